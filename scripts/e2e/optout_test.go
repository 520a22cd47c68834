//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"backinstock/scripts/internal/optoutrace"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

// TestUnsubscribeDuringA100kFanOut is the size of
// scripts/internal/optoutrace's TestUnsubscribeDuringALargeFanOut: 100,000
// app and 10,000 email notifications in Kafka, the leaver's every 20th,
// the real wishlist API, notifier and gateway in-process on servers of its
// own (not the stack's processes: it needs a region no binary serves).
func TestUnsubscribeDuringA100kFanOut(t *testing.T) {
	k, err := testenv.StartKafka(3)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	o := optoutrace.Options{Records: 100_000, Emails: 10_000,
		Kafka: kafka.Config{Brokers: k.Brokers}, RedisURL: r.URL(), NATSURL: n.URL(),
		Region: "optout-100k", Log: zap.NewNop(), Logf: t.Logf}
	o.Defaults()
	res, err := optoutrace.Run(ctx, o)
	if err != nil {
		t.Fatalf("%v (%s)", err, res)
	}
	t.Log(res)
	for _, p := range res.Problems(o) {
		t.Error(p)
	}
}
