package attribution_test

import (
	"context"
	"maps"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/engagement/internal/aggkeys"
	"backinstock/services/engagement/internal/attribution"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

var windows = attribution.Windows{Click: 24 * time.Hour, View: 240 * time.Hour, Horizon: 720 * time.Hour}

func open(t *testing.T) (*attribution.Store, redis.UniversalClient) {
	t.Helper()
	opt, err := redis.ParseURL(env.Redis(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return attribution.NewStore(rdb, windows), rdb
}

func run(t *testing.T, st *attribution.Store, add func(b *attribution.Batch)) []attribution.Outcome {
	t.Helper()
	var b attribution.Batch
	add(&b)
	out, err := st.Run(context.Background(), &b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func hash(t *testing.T, rdb redis.UniversalClient, key string) map[string]string {
	t.Helper()
	h, err := rdb.HGetAll(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

var order = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// TestWindowsAreInclusiveAndEndAtTheOrder: a click exactly a click window
// before the order is direct, a millisecond more is not; the same for a
// delivery and the view window; a touch after the order earns nothing.
func TestWindowsAreInclusiveAndEndAtTheOrder(t *testing.T) {
	st, rdb := open(t)
	sku := testenv.Unique(t, "sku")
	cases := []struct {
		user, kind string
		at         time.Time
		want       string // the aggregate field set, or "" for none
	}{
		{"click-edge", "click", order.Add(-24 * time.Hour), aggkeys.DirectOrders},
		{"click-past", "click", order.Add(-24*time.Hour - time.Millisecond), ""},
		{"view-edge", "delivered", order.Add(-240 * time.Hour), aggkeys.AssistedOrders},
		{"view-past", "delivered", order.Add(-240*time.Hour - time.Millisecond), ""},
		{"click-after", "click", order.Add(time.Millisecond), ""},
	}
	for i, c := range cases {
		run(t, st, func(b *attribution.Batch) {
			st.AddTouch(b, c.kind, attribution.Touch{UserID: c.user, SKU: sku, Region: "eu-west-1", Channel: "email", EventID: "e" + c.user, At: c.at})
			st.AddLine(b, attribution.Line{OrderID: "o" + c.user, Index: i, UserID: c.user, SKU: sku, OrderedAt: order, Quantity: 1, Revenue: 100, Currency: "EUR"})
		})
	}
	got := hash(t, rdb, aggkeys.Attribution(sku, "eu-west-1", "email", aggkeys.Day(order)))
	want := map[string]string{aggkeys.DirectOrders: "1", aggkeys.DirectUnits: "1", aggkeys.DirectRevenue("EUR"): "100",
		aggkeys.AssistedOrders: "1", aggkeys.AssistedUnits: "1", aggkeys.AssistedRevenue("EUR"): "100"}
	if !maps.Equal(got, want) {
		t.Fatalf("aggregate %v, want %v", got, want)
	}
}

// TestALateTouchMovesTheLine: a line first read alone is not attributed;
// a delivery makes it assisted, a click direct (the assisted fields gone,
// not zero), a later click within the window moves it to that click's
// channel; the same line and touches read again change nothing.
func TestALateTouchMovesTheLine(t *testing.T) {
	st, rdb := open(t)
	sku := testenv.Unique(t, "sku")
	line := attribution.Line{OrderID: "o1", UserID: "u1", SKU: sku, OrderedAt: order, Quantity: 3, Revenue: 2997, Currency: "EUR"}
	touch := func(channel, id string, before time.Duration) attribution.Touch {
		return attribution.Touch{UserID: "u1", SKU: sku, Region: "us-east-1", Channel: channel, EventID: id, At: order.Add(-before)}
	}
	key := func(channel string) string { return aggkeys.Attribution(sku, "us-east-1", channel, aggkeys.Day(order)) }

	out := run(t, st, func(b *attribution.Batch) { st.AddLine(b, line) })
	if !out[0].NewLine || len(out[0].Changes) != 0 || len(out[0].Buckets) != 0 {
		t.Fatalf("a line alone: %+v", out)
	}
	out = run(t, st, func(b *attribution.Batch) { st.AddTouch(b, "delivered", touch("sms", "d1", 72*time.Hour)) })
	if len(out[0].Changes) != 1 || out[0].Changes[0].Kind != attribution.KindAssisted || out[0].Changes[0].Revenue != 2997 {
		t.Fatalf("after the delivery: %+v", out)
	}
	if got := hash(t, rdb, key("sms")); got[aggkeys.AssistedUnits] != "3" {
		t.Fatalf("sms aggregate %v", got)
	}
	run(t, st, func(b *attribution.Batch) { st.AddTouch(b, "click", touch("email", "c1", 5*time.Hour)) })
	if got := hash(t, rdb, key("sms")); len(got) != 0 {
		t.Fatalf("the assisted aggregate kept %v after the line moved to direct", got)
	}
	run(t, st, func(b *attribution.Batch) { st.AddTouch(b, "click", touch("app", "c2", time.Hour)) })
	want := map[string]string{aggkeys.DirectOrders: "1", aggkeys.DirectUnits: "3", aggkeys.DirectRevenue("EUR"): "2997"}
	if got := hash(t, rdb, key("app")); !maps.Equal(got, want) {
		t.Fatalf("app aggregate %v, want %v (the latest click)", got, want)
	}
	if got := hash(t, rdb, key("email")); len(got) != 0 {
		t.Fatalf("email aggregate %v, want none", got)
	}

	out = run(t, st, func(b *attribution.Batch) {
		st.AddLine(b, line)
		st.AddTouch(b, "click", touch("email", "c1", 5*time.Hour))
		st.AddTouch(b, "delivered", touch("sms", "d1", 72*time.Hour))
	})
	for _, o := range out {
		if o.NewLine || len(o.Changes) != 0 {
			t.Fatalf("read again: %+v", out)
		}
	}
	if got := hash(t, rdb, key("app")); !maps.Equal(got, want) {
		t.Fatalf("app aggregate after the replay %v, want %v", got, want)
	}
	if ok, _ := rdb.SIsMember(context.Background(), aggkeys.AttributionIndex, aggkeys.IndexMember(sku, "us-east-1", "app")).Result(); !ok {
		t.Error("the index lacks the app bucket")
	}
}

// TestTouchesPastTheHorizonAreTrimmed: a touch older than the buyer's
// newest of the SKU by more than the view window and the horizon goes.
func TestTouchesPastTheHorizonAreTrimmed(t *testing.T) {
	st, rdb := open(t)
	sku := testenv.Unique(t, "sku")
	old := attribution.Touch{UserID: "u1", SKU: sku, Region: "us-east-1", Channel: "sms", EventID: "old", At: order}
	recent := old
	recent.EventID, recent.At = "recent", order.Add(windows.View+windows.Horizon+time.Millisecond)
	run(t, st, func(b *attribution.Batch) { st.AddTouch(b, "delivered", old); st.AddTouch(b, "delivered", recent) })
	members, err := rdb.ZRange(context.Background(), "engagement:attrtouch:{"+sku+"}:delivered:u1", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 1 || members[0] != "us-east-1|sms|recent" {
		t.Fatalf("touches %v, want only the recent one", members)
	}
	if ttl := rdb.PTTL(context.Background(), "engagement:attrtouch:{"+sku+"}:delivered:u1").Val(); ttl <= windows.View || ttl > windows.View+windows.Horizon {
		t.Errorf("touches kept %s, want view window + horizon", ttl)
	}
}
