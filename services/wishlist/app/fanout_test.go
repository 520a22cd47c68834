package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// checkpoint reads a fan-out's progress: its checkpoint, with the counts of
// the segments of a round in progress added (store.Progress).
func checkpoint(t *testing.T, rdb *redis.Client, eventID, region string) wishes.Checkpoint {
	t.Helper()
	ck, err := store.New(rdb).Progress(context.Background(), eventID, region)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func waitDone(t *testing.T, rdb *redis.Client, eventID, region string, timeout time.Duration) wishes.Checkpoint {
	t.Helper()
	var ck wishes.Checkpoint
	testenv.Eventually(t, timeout, func() bool {
		ck = checkpoint(t, rdb, eventID, region)
		return ck.Done
	}, "fan-out of %s in %s done", eventID, region)
	return ck
}

// collect reads every notify topic of regions and returns, per (region,
// user, channel), how many requests it holds, after checking each record
// against the contract.
func collect(t *testing.T, cl sarama.Client, sku string, regions ...string) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, r := range regions {
		for _, c := range events.ChannelNames() {
			topic := catalog.Notify(r, c)
			testenv.ReadTopic(t, cl, topic, func(m *sarama.ConsumerMessage) {
				n, err := events.DecodeNotification(m.Value)
				if err != nil {
					t.Fatalf("%s offset %d: %v", topic, m.Offset, err)
				}
				if n.SKU != sku {
					return
				}
				if n.Region != r || n.Channel != c || string(m.Key) != n.UserID {
					t.Fatalf("%s holds a notification for %s/%s keyed %q: %+v", topic, n.Region, n.Channel, m.Key, n)
				}
				got[key(r, "/", n.UserID, "/", c)]++
			})
		}
	}
	return got
}

// TestThreeRegionGroupsEachNotifyTheirOwn runs the three default regions'
// groups on one restock topic: each produces exactly its own region's
// wishlisters on their channels, minus opt-outs and unsubscribed users.
func TestThreeRegionGroupsEachNotifyTheirOwn(t *testing.T) {
	kcfg := privateKafka(t)
	r := env.Redis(t)
	cfg := baseConfig(t, kcfg, r.URL())
	c := client{t: t, base: startServe(t, cfg)}
	sku := testenv.Unique(t, "sku")
	u := func(n int) string { return fmt.Sprintf("%s-u%d", sku, n) }

	c.putEntry(u(1), sku, "us-east-1", "app", "email")
	c.putEntry(u(2), sku, "us-east-1", "sms")
	c.putEntry(u(3), sku, "us-east-1", "app", "web", "email", "sms")
	c.do("PUT", "/v1/users/"+u(3)+"/preferences", token, "application/json", `{"opt_out":["email","sms"]}`, nil)
	c.putEntry(u(4), sku, "us-east-1", "app")
	c.do("PUT", "/v1/users/"+u(4)+"/preferences", token, "application/json", `{"unsubscribed":true}`, nil)
	c.putEntry(u(5), sku, "eu-west-1", "email")
	c.do("PUT", "/v1/users/"+u(5)+"/preferences", token, "application/json",
		`{"locale":"de-DE","time_zone":"Europe/Berlin","quiet_hours":{"start":"22:00","end":"07:00"},"contacts":{"email":"five@example.com"}}`, nil)
	c.putEntry(u(6), sku, "eu-west-1", "web", "app")
	c.putEntry(u(7), sku, "ap-south-1", "app")
	c.putEntry(u(8), sku, "ap-south-1", "sms")
	c.do("PUT", "/v1/users/"+u(8)+"/preferences", token, "application/json", `{"opt_out":["sms"]}`, nil)
	c.do("PUT", "/v1/users/"+u(11)+"/preferences", token, "application/json", `{"opt_out":["app"]}`, nil) // preferences before the entry
	c.putEntry(u(11), sku, "ap-south-1", "app", "web")
	c.putEntry(u(9), sku+"-other", "us-east-1", "app") // another sku: never notified
	c.putEntry(u(10), sku, "us-east-1", "web")
	if code := c.do("DELETE", "/v1/users/"+u(10)+"/wishlist/"+sku, token, "", "", nil); code != 204 { // removed: never notified
		t.Fatalf("delete: %d", code)
	}

	want := map[string]int{}
	for _, w := range []string{"us-east-1/1/app", "us-east-1/1/email", "us-east-1/2/sms", "us-east-1/3/app", "us-east-1/3/web",
		"eu-west-1/5/email", "eu-west-1/6/app", "eu-west-1/6/web", "ap-south-1/7/app", "ap-south-1/11/web"} {
		p := strings.Split(w, "/")
		want[key(p[0], "/", u(atoi(p[1])), "/", p[2])] = 1
	}

	regs := map[string]*prometheus.Registry{}
	for _, region := range cfg.Regions {
		regs[region], _ = startFanout(t, cfg, region)
	}
	for _, region := range cfg.Regions {
		produceEvent(t, kcfg, catalog.Restock, sku, restock(sku, region, 1, 10, nil))
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	for _, region := range cfg.Regions {
		waitDone(t, rdb, events.RestockEventID(sku, region, 1), region, 60*time.Second)
	}
	cl := newClient(t, kcfg)
	got := collect(t, cl, sku, cfg.Regions...)
	if !maps.Equal(got, want) {
		t.Fatalf("notifications (region/user/channel → count):\n got %v\nwant %v", sortedKeys(got), sortedKeys(want))
	}
	// The preferences travel on the notification.
	testenv.ReadTopic(t, cl, catalog.Notify("eu-west-1", "email"), func(m *sarama.ConsumerMessage) {
		n, _ := events.DecodeNotification(m.Value)
		if n.UserID == u(5) && (n.Contact != "five@example.com" || n.Locale != "de-DE" || n.QuietHours == nil ||
			n.NotificationID != events.NotificationID(u(5), sku, "eu-west-1", 1, "email")) {
			t.Fatalf("notification of user 5 = %+v", n)
		}
	})
	if got := testutil.ToFloat64(metric(t, regs["us-east-1"], "backinstock_wishlist_notifications_produced_total", "app")); got != 2 {
		t.Errorf("us-east-1 app notifications metric = %v, want 2", got)
	}
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s=%d", k, v))
	}
	slices.Sort(out)
	return out
}

// metric finds the collector of a counter by name and channel label.
func metric(t *testing.T, reg *prometheus.Registry, name, channel string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "channel" && l.GetValue() == channel {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
					c.Add(m.GetCounter().GetValue())
					return c
				}
			}
		}
	}
	t.Fatalf("metric %s{channel=%q} not found", name, channel)
	return nil
}

// TestStockAwareWaves: 5 units, per_unit 2 → the first wave notifies the 10
// earliest reachable wishlisters (one of the 10 earliest has unsubscribed,
// so the 11th is in it); with 2 units still in stock after the interval a
// second wave notifies the next 4; once the stock is 0 nothing more follows.
// The same with one cursor and with each wave split into segments (the
// first into 3, the second into 2, the unsubscribed one's round followed
// by a round of one).
func TestStockAwareWaves(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		parallelism, segmentMin int
	}{{"one cursor", 1, 0}, {"segments", 3, 2}} {
		t.Run(tc.name, func(t *testing.T) { stockAwareWaves(t, tc.parallelism, tc.segmentMin) })
	}
}

func stockAwareWaves(t *testing.T, parallelism, segmentMin int) {
	kcfg := privateKafka(t)
	r := env.Redis(t)
	cfg := baseConfig(t, kcfg, r.URL())
	cfg.Parallelism = parallelism
	if segmentMin > 0 {
		cfg.SegmentMin = segmentMin
	}
	c := client{t: t, base: startServe(t, cfg)}
	sku := testenv.Unique(t, "sku")
	region := "us-east-1"

	// 30 wishlisters with distinct wishlist times, imported out of order.
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var nd strings.Builder
	order := make([]string, 30)
	for i := 29; i >= 0; i-- {
		order[i] = fmt.Sprintf("w%02d-%s", 29-i, sku) // ids sort against the time order
		fmt.Fprintf(&nd, `{"user_id":%q,"sku":%q,"region":%q,"channels":["app"],"at":%q}`+"\n", order[i], sku, region, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
	}
	var res struct{ Imported int64 }
	if code := c.do("POST", "/v1/wishlists:import", token, "application/x-ndjson", nd.String(), &res); code != 200 || res.Imported != 30 {
		t.Fatalf("import: %d %+v", code, res)
	}
	if code := c.do("PUT", "/v1/users/"+order[2]+"/preferences", token, "application/json", `{"unsubscribed":true}`, nil); code != 200 {
		t.Fatalf("unsubscribe %s: %d", order[2], code)
	}
	order = slices.Delete(order, 2, 3) // the reachable wishlisters, earliest first

	level := func(q int64) {
		produceEvent(t, kcfg, catalog.Stock, events.StockKey(sku, region), events.StockLevel{SKU: sku, Region: region, Quantity: q, Episode: 1, At: time.Now().UTC()})
	}
	level(2) // what the stock view will show after the first wave
	reg, _ := startFanout(t, cfg, region)
	// The interval leaves the test time to sell out before a third wave
	// reads the stock view, on a loaded CI machine too.
	const interval = 2500 * time.Millisecond
	ev := restock(sku, region, 1, 5, &events.Delivery{Mode: events.DeliveryStockAware, PerUnit: 2, MinStock: 1, IntervalMS: interval.Milliseconds()})
	produceEvent(t, kcfg, catalog.Restock, sku, ev)

	cl := newClient(t, kcfg)
	topic := catalog.Notify(region, "app")
	// waves splits the users by wave: a wave's records are stamped when its
	// pages are read, and waves are an interval apart. Reading the topic as
	// the first wave lands would race the second one.
	waves := func() (first, rest []string) {
		var ns []events.Notification
		testenv.ReadTopic(t, cl, topic, func(m *sarama.ConsumerMessage) {
			if n, _ := events.DecodeNotification(m.Value); n.SKU == sku {
				ns = append(ns, n)
			}
		})
		if len(ns) == 0 {
			return nil, nil
		}
		start := slices.MinFunc(ns, func(a, b events.Notification) int { return a.CreatedAt.Compare(b.CreatedAt) }).CreatedAt
		for _, n := range ns {
			if n.CreatedAt.Before(start.Add(interval / 2)) {
				first = append(first, n.UserID)
			} else {
				rest = append(rest, n.UserID)
			}
		}
		slices.Sort(first)
		slices.Sort(rest)
		return first, rest
	}
	sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

	testenv.Eventually(t, 30*time.Second, func() bool { return endOffsets(t, cl, topic) >= 14 }, "second wave")
	level(0) // sold out again
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	ck := waitDone(t, rdb, ev.EventID, region, 30*time.Second)
	first, rest := waves()
	if want := sorted(order[:10]); !slices.Equal(first, want) {
		t.Fatalf("first wave = %v, want the 10 earliest %v", first, want)
	}
	if want := sorted(order[10:14]); !slices.Equal(rest, want) {
		t.Fatalf("after sell-out, later waves = %v, want the next 4 %v", rest, want)
	}
	if ck.Wave != 2 || ck.Records != 14 || ck.Users != 15 || ck.Round != nil {
		t.Fatalf("checkpoint = %+v, want 2 waves, 15 wishlisters passed and 14 records, no round left", ck)
	}
	if n := rdb.Exists(context.Background(), store.SegmentsKey(ev.EventID, region)).Val(); n != 0 {
		t.Fatal("segments left after the fan-out")
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "backinstock_wishlist_fanout_batch_waits_total" && mf.GetMetric()[0].GetCounter().GetValue() != 2 {
			t.Errorf("batch waits = %v, want 2", mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
}

// TestPoisonRestocksAreDeadLettered: undecodable, invalid and mis-keyed
// restock records go to deadletter.v1 with the reason, and the restock after
// them is fanned out.
func TestPoisonRestocksAreDeadLettered(t *testing.T) {
	kcfg := privateKafka(t)
	r := env.Redis(t)
	cfg := baseConfig(t, kcfg, r.URL())
	c := client{t: t, base: startServe(t, cfg)}
	sku := testenv.Unique(t, "sku")
	c.putEntry("p1-"+sku, sku, "us-east-1", "app")
	startFanout(t, cfg, "us-east-1")

	produce(t, kcfg, catalog.Restock, sku, []byte("\x00not json"))
	bad := restock(sku, "us-east-1", 1, 5, nil)
	bad.Quantity = 0
	data, _ := json.Marshal(bad)
	produce(t, kcfg, catalog.Restock, sku, data)
	produceEvent(t, kcfg, catalog.Restock, "another-sku", restock(sku, "us-east-1", 1, 5, nil))
	good := restock(sku, "us-east-1", 2, 5, nil)
	produceEvent(t, kcfg, catalog.Restock, sku, good)

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	waitDone(t, rdb, good.EventID, "us-east-1", 60*time.Second)
	cl := newClient(t, kcfg)
	var reasons []string
	testenv.Eventually(t, 30*time.Second, func() bool { return endOffsets(t, cl, catalog.DeadLetter) >= 3 }, "dead letters")
	testenv.ReadTopic(t, cl, catalog.DeadLetter, func(m *sarama.ConsumerMessage) {
		h := map[string]string{}
		for _, rh := range m.Headers {
			h[string(rh.Key)] = string(rh.Value)
		}
		if h[kafka.HeaderDLQGroup] != "fanout.us-east-1" || h[kafka.HeaderDLQTopic] != catalog.Restock || h[kafka.HeaderDLQReason] == "" {
			t.Errorf("dead letter headers = %v", h)
		}
		reasons = append(reasons, h[kafka.HeaderDLQReason])
	})
	all := strings.Join(reasons, "\n")
	if len(reasons) != 3 || !strings.Contains(all, "invalid JSON") || !strings.Contains(all, "quantity: must be") || !strings.Contains(all, "record key") {
		t.Fatalf("dead-letter reasons = %q", reasons)
	}
	if got := collect(t, cl, sku, "us-east-1"); len(got) != 1 {
		t.Fatalf("notifications after the poison = %v", got)
	}
}
