package optoutrace_test

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/zap"

	"backinstock/scripts/internal/optoutrace"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// TestUnsubscribeDuringALargeFanOut: 5,000 app and 500 email
// notifications already in Kafka, every 20th the leaver's; the leaver
// unsubscribes (one-click, the real wishlist API) once a third of them are
// at the edge. After its 2xx: at most the leaver's records of one notifier
// batch per channel reach the edge (measured by the stream's sequence),
// every leaver email stored after the 2xx is suppressed by the gateway,
// at most one webhook per gateway worker (sends under way at the 2xx)
// reaches the provider after it, and everyone else gets everything. The
// 100,000-notification run is TestUnsubscribeDuringA100kFanOut in
// scripts/e2e (make e2e).
func TestUnsubscribeDuringALargeFanOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	o := optoutrace.Options{Records: 5_000, Emails: 500,
		Kafka:    kafka.Config{Brokers: env.Kafka(t).Brokers},
		RedisURL: env.Redis(t).URL(), NATSURL: env.NATS(t).URL(),
		Region: testenv.Unique(t, "oo")[:20], Log: zap.NewNop(), Logf: t.Logf}
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
