//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"backinstock/scripts/internal/e2eenv"
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
	faults := faultList()
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			if f.name == "redis-restart" && stack.Redis.Embedded() {
				t.Skip("no redis-server on PATH: the embedded stand-in keeps nothing across a restart (.ci/run installs redis-server)")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			sku := unique("gpu")
			lines := make([]e2eenv.ImportLine, faultUsers)
			for i := range lines {
				lines[i] = e2eenv.ImportLine{UserID: fmt.Sprintf("%s-%05d", prefix, i), SKU: sku, Region: faultRegion, Channels: channels}
			}
			t0 := time.Now()
			mustImport(t, ctx, lines)
			t.Logf("imported %d wishlisters in %s", faultUsers, time.Since(t0).Round(time.Millisecond))

			base := baselines(t, ctx)
			u := e2eenv.StockUpdate{Region: faultRegion, Quantity: 100}
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
			stack.Log.Logf("%s: fault over after %s, %d at the edge", f.name, time.Since(t1).Round(time.Millisecond), last.Total()-base[faultRegion].Total())
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

// fault is one thing that breaks during a fan-out.
type fault struct {
	name string
	// stockAware spreads the fan-out itself over waves, so a fan-out
	// worker can be killed in the middle of it.
	stockAware bool
	// after: notifications visible at the edge before the fault.
	after  uint64
	inject func(t *testing.T, ctx context.Context)
}

func faultList() []fault {
	return []fault{
		{"sigkill-fanout-worker", true, 8_000, func(t *testing.T, ctx context.Context) {
			p := stack.Fanout[faultRegion][0]
			must(t, p.Kill())
			must(t, p.Restart())
		}},
		{"sigkill-notifier", false, 20_000, func(t *testing.T, ctx context.Context) {
			p := stack.Notifier[faultRegion][0]
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
}

// TestAllFaultsInOneFanout injects the five faults one after another into
// a single 100,000-notification fan-out, each once more of it is visible at
// the edge; after each, what reached the edge so far holds no duplicate and
// nothing unexpected, and at the end every notification is there once.
func TestAllFaultsInOneFanout(t *testing.T) {
	if stack.Redis.Embedded() {
		t.Skip("no redis-server on PATH: the embedded stand-in keeps nothing across a restart (.ci/run installs redis-server)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// Five faults take a minute or more to inject and recover from, so the
	// region's notifier is slowed to 400/s per channel for this fan-out
	// (a graceful restart with another RATE_LIMITS), and put back after.
	n := stack.Notifier[faultRegion][0]
	env := n.Env
	n.Env = append(append([]string(nil), env...), "RATE_LIMITS=app=400,web=400,email=400,sms=400")
	must(t, n.Stop(30*time.Second))
	must(t, n.Start())
	must(t, n.WaitReady(ctx, time.Minute))
	defer func() {
		n.Env = env
		must(t, n.Stop(30*time.Second))
		must(t, n.Start())
		must(t, n.WaitReady(context.Background(), time.Minute))
	}()
	prefix := unique("a")
	sku := unique("tv")
	lines := make([]e2eenv.ImportLine, faultUsers)
	for i := range lines {
		lines[i] = e2eenv.ImportLine{UserID: fmt.Sprintf("%s-%05d", prefix, i), SKU: sku, Region: faultRegion, Channels: channels}
	}
	mustImport(t, ctx, lines)
	exp := newExpectation()
	base := baselines(t, ctx)
	t1 := time.Now()
	// Stock-aware waves keep the fan-out itself going for the first fault.
	res := mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: faultRegion, Quantity: 100,
		Delivery: &events.Delivery{Mode: events.DeliveryStockAware, PerUnit: 50, MinStock: 1, IntervalMS: 2000}}, true)
	for _, l := range lines {
		exp.add(l.UserID, sku, faultRegion, res.Episode, channels...)
	}
	// The order puts the outages that stop delivery first and the broker
	// restart, during which delivery goes on, last, so every fault lands
	// while notifications are still on their way.
	byName := map[string]fault{}
	for _, f := range faultList() {
		byName[f.name] = f
	}
	plan := []struct {
		name string
		at   uint64
	}{{"sigkill-fanout-worker", 8_000}, {"sigkill-notifier", 22_000}, {"redis-restart", 32_000}, {"nats-down-20s", 42_000}, {"kafka-broker-restart", 55_000}}
	for _, step := range plan {
		f := byName[step.name]
		got, err := edge.WaitCount(ctx, faultRegion, base[faultRegion], step.at, 3*time.Minute)
		if err != nil {
			t.Fatalf("before %s: %v\n%s", f.name, err, stack.Logs(30))
		}
		stack.Log.Logf("all-faults: %d at the edge after %s; injecting %s", got, time.Since(t1).Round(time.Millisecond), f.name)
		f.inject(t, ctx)
		for _, p := range stack.Procs() {
			if err := p.WaitReady(ctx, 2*time.Minute); err != nil {
				t.Fatalf("after %s: %v", f.name, err)
			}
		}
		// What is at the edge so far: no duplicate, nothing unexpected.
		delivered, err := edge.Collect(ctx, faultRegion, base[faultRegion], func(d *e2eenv.Delivered) bool { return d.SKU == sku })
		if err != nil {
			t.Fatal(err)
		}
		c := e2eenv.Tally("all-faults after "+f.name, exp.ids, delivered)
		line := fmt.Sprintf("PARTIAL %-40s delivered=%d distinct=%d duplicates=%d unexpected=%d bad_headers=%d (of %d)",
			c.Scenario, c.Delivered, c.Distinct, c.Duplicates, c.Unexpected, c.BadHeaders, c.Expected)
		t.Log(line)
		fmt.Println(line)
		if c.Duplicates != 0 || c.Unexpected != 0 || c.BadHeaders != 0 {
			t.Errorf("after %s: %s", f.name, c)
		}
	}
	verify(t, ctx, "all-faults-one-fanout", base, exp, 4*time.Minute)
	t.Logf("all-faults: whole fan-out took %s", time.Since(t1).Round(time.Millisecond))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
