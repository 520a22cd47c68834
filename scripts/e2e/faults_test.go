//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"backinstock/scripts/internal/harness"
	"backinstock/topics/events"
)

// faultUsers × 4 channels is the size of each fault scenario's fan-out.
const faultUsers = 25_000

// TestFaultsDuringLargeFanout runs a 100,000-notification fan-out (25,000
// wishlisters × 4 channels in one region) per fault, injects the fault once
// part of it is visible at the edge, lets the system recover on its own and
// then requires every expected notification at the edge exactly once.
func TestFaultsDuringLargeFanout(t *testing.T) {
	prefix := unique("f")
	faults := []struct {
		name string
		// stockAware spreads the fan-out itself over waves, so a fan-out
		// worker can be killed in the middle of it.
		stockAware bool
		// after: notifications visible at the edge before the fault.
		after  uint64
		inject func(t *testing.T, ctx context.Context)
	}{
		{"sigkill-fanout-worker", true, 8_000, func(t *testing.T, ctx context.Context) {
			p := stack.Fanout[faultRegion]
			must(t, p.Kill())
			must(t, p.Restart())
		}},
		{"sigkill-notifier", false, 20_000, func(t *testing.T, ctx context.Context) {
			p := stack.Notifier[faultRegion]
			must(t, p.Kill())
			must(t, p.Restart())
		}},
		{"kafka-broker-restart", false, 20_000, func(t *testing.T, ctx context.Context) {
			// The broker that coordinates the notifier's group: the worst one to lose.
			id := stack.Kafka.Cluster.CoordinatorFor("notifier." + faultRegion)
			stack.Log.Logf("stopping kafka broker %d (port %d) for 5s", id, stack.Kafka.Ports()[id])
			must(t, stack.Kafka.StopBroker(id))
			time.Sleep(5 * time.Second) // the outage itself
			must(t, stack.Kafka.StartBroker(id))
		}},
		{"redis-restart", false, 20_000, func(t *testing.T, ctx context.Context) {
			must(t, stack.Redis.Restart())
		}},
		{"nats-down-20s", false, 20_000, func(t *testing.T, ctx context.Context) {
			stack.StopNATS()
			time.Sleep(20 * time.Second) // the outage the issue fixes
			must(t, stack.StartNATS())
		}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			if f.name == "redis-restart" && stack.Redis.Embedded() {
				t.Skip("no redis-server on PATH: the embedded stand-in keeps nothing across a restart (.ci/run installs redis-server)")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			sku := unique("gpu")
			lines := make([]harness.ImportLine, faultUsers)
			for i := range lines {
				lines[i] = harness.ImportLine{UserID: fmt.Sprintf("%s-%05d", prefix, i), SKU: sku, Region: faultRegion, Channels: channels}
			}
			t0 := time.Now()
			mustImport(t, ctx, lines)
			t.Logf("imported %d wishlisters in %s", faultUsers, time.Since(t0).Round(time.Millisecond))

			base := baselines(t, ctx)
			u := harness.StockUpdate{Region: faultRegion, Quantity: 100}
			if f.stockAware {
				// 50 per unit × 100 units = 5,000 wishlisters per wave, five waves.
				u.Delivery = &events.Delivery{Mode: events.DeliveryStockAware, PerUnit: 50, MinStock: 1, IntervalMS: 2000}
			}
			t1 := time.Now()
			res := mustStock(t, ctx, sku, u, true)
			got, err := edge.WaitCount(ctx, faultRegion, base[faultRegion], f.after, 2*time.Minute)
			if err != nil {
				t.Fatalf("before the fault: %v\n%s", err, stack.Logs(30))
			}
			stack.Log.Logf("%s: %d notifications at the edge after %s; injecting the fault", f.name, got, time.Since(t1).Round(time.Millisecond))
			f.inject(t, ctx)
			_, last, _ := edge.State(ctx, faultRegion)
			stack.Log.Logf("%s: fault over after %s, %d at the edge", f.name, time.Since(t1).Round(time.Millisecond), last-base[faultRegion])
			for _, p := range stack.Procs() {
				if err := p.WaitReady(ctx, 2*time.Minute); err != nil {
					t.Fatalf("after %s: %v", f.name, err)
				}
			}
			exp := newExpectation()
			for _, l := range lines {
				exp.add(l.UserID, sku, faultRegion, res.Episode, channels...)
			}
			verify(t, ctx, f.name, base, exp, 3*time.Minute)
			t.Logf("%s: whole fan-out took %s", f.name, time.Since(t1).Round(time.Millisecond))
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
