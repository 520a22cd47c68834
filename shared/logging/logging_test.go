package logging_test

import (
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"backinstock/shared/logging"
)

func TestLevels(t *testing.T) {
	if _, err := logging.New("debug"); err != nil {
		t.Fatal(err)
	}
	if _, err := logging.New("loud"); err == nil || !strings.Contains(err.Error(), "LOG_LEVEL") {
		t.Fatalf("got %v, want an error naming LOG_LEVEL", err)
	}
}

func TestSaramaLogsRouteIntoZap(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	old := sarama.Logger
	defer func() { sarama.Logger = old }()
	logging.RouteSarama(zap.New(core))
	sarama.Logger.Printf("connected to broker at %s\n", "127.0.0.1:9092")
	entries := logs.FilterMessage("connected to broker at 127.0.0.1:9092").All()
	if len(entries) != 1 || entries[0].LoggerName != "sarama" {
		t.Fatalf("entries %+v", logs.All())
	}
}
