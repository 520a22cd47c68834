package logging_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"backinstock/shared/logging"
	"backinstock/shared/testenv"
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

func TestRedisLogsRouteIntoZap(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	logging.RouteRedis(zap.New(core))
	// go-redis has no getter for its logger to restore; a no-op one keeps
	// later tests' output clean.
	defer logging.RouteRedis(zap.NewNop())
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	// A sub-millisecond expiry is one of the things go-redis reports through its logger.
	if err := c.Set(context.Background(), "k", "v", time.Microsecond).Err(); err != nil {
		t.Fatal(err)
	}
	entries := logs.FilterLoggerName("redis").All()
	if len(entries) != 1 || entries[0].Level != zap.WarnLevel || !strings.Contains(entries[0].Message, "truncating to 1ms") {
		t.Fatalf("entries %+v", logs.All())
	}
}
