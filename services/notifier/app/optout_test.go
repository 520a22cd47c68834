package app_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/notifier/internal/notifiertest"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
	"backinstock/topics/optout"
)

// TestOptOutsHonouredBeforeTheEdge: the notifier reads each recipient's
// opt-out record right before it publishes. An unsubscribed user's
// notifications are not published on any channel, a channel opt-out
// suppresses that channel only, a notification held for quiet hours is not
// released once its user has unsubscribed meanwhile, and a user who opted
// back in is notified again. Suppressed records are committed and counted.
func TestOptOutsHonouredBeforeTheEdge(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []string{"app", "email"}, nil)
	rdb := redis.NewClient(&redis.Options{Addr: f.redis.Addr})
	defer rdb.Close()
	ctx := context.Background()
	set := func(user, v string) {
		t.Helper()
		var err error
		if v == "" {
			err = rdb.Del(ctx, optout.Key(user)).Err()
		} else {
			err = rdb.Set(ctx, optout.Key(user), v, 0).Err()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Users of this region only: the records are keyed by user id alone.
	gone, noEmail, back, plain, sleeper := f.region+"-gone", f.region+"-noemail", f.region+"-back", f.region+"-plain", f.region+"-sleeper"
	set(gone, optout.All)
	set(noEmail, "email")
	set(back, optout.All)

	var ns []events.Notification
	for _, u := range []string{gone, noEmail, back, plain} {
		for _, ch := range f.chans {
			ns = append(ns, notifiertest.Notification(f.region, ch, u, "sku-o", 1, time.Now()))
		}
	}
	held := notifiertest.Notification(f.region, "app", sleeper, "sku-o", 1, time.Now())
	held.TimeZone, held.QuietHours = "Europe/Berlin", &events.QuietHours{Start: "22:00", End: "07:00"}
	ns = append(ns, held)
	produce(t, f, ns)

	var now atomic.Int64
	now.Store(time.Date(2026, 1, 10, 3, 0, 0, 0, time.UTC).UnixNano()) // 04:00 in Berlin
	cfg := f.config()
	cfg.Now = func() time.Time { return time.Unix(0, now.Load()) }
	r := f.start(t, cfg)
	f.waitCommitted(t, 30*time.Second)
	want := map[string]int{ // notification id -> copies at the edge
		events.NotificationID(plain, "sku-o", f.region, 1, "app"):   1,
		events.NotificationID(plain, "sku-o", f.region, 1, "email"): 1,
		events.NotificationID(noEmail, "sku-o", f.region, 1, "app"): 1,
	}
	check := func(stage string) {
		t.Helper()
		c := f.counts(t)
		if c.Total != len(want) {
			t.Fatalf("%s: edge holds %d messages, want %d: %v", stage, c.Total, len(want), c.PerID)
		}
		for id, n := range want {
			if c.PerID[id] != n {
				t.Fatalf("%s: edge holds %d of %s, want %d: %v", stage, c.PerID[id], id, n, c.PerID)
			}
		}
	}
	check("first pass")
	for _, tc := range []struct {
		channel, reason string
		want            float64
	}{
		{"app", optout.ReasonUnsubscribed, 2}, // gone, back
		{"email", optout.ReasonUnsubscribed, 2},
		{"email", optout.ReasonOptedOut, 1}, // noEmail
		{"app", optout.ReasonOptedOut, 0},
	} {
		if got := metric(r.reg, "backinstock_notifier_suppressed_total", "channel", tc.channel, "reason", tc.reason); got != tc.want {
			t.Errorf("suppressed_total{channel=%s,reason=%s} = %v, want %v", tc.channel, tc.reason, got, tc.want)
		}
	}
	if got := metric(r.reg, "backinstock_notifier_held_total"); got != 1 {
		t.Fatalf("held = %v, want 1", got)
	}

	// The sleeper unsubscribes while held; the quiet hours end. The held
	// gauge is set by the releaser's tick: it reads 0 before the first tick
	// after the hold too, so the wait is for the release itself.
	set(sleeper, optout.All)
	now.Store(time.Date(2026, 1, 10, 6, 0, 1, 0, time.UTC).UnixNano()) // 07:00:01 in Berlin
	testenv.Eventually(t, 10*time.Second, func() bool {
		return metric(r.reg, "backinstock_notifier_released_total", "channel", "app") == 1 && metric(r.reg, "backinstock_notifier_held_pending") == 0
	}, "held notification released")
	if got := metric(r.reg, "backinstock_notifier_suppressed_total", "channel", "app", "reason", optout.ReasonUnsubscribed); got != 3 {
		t.Fatalf("suppressed app/unsubscribed after the release = %v, want 3", got)
	}
	check("after the release")

	// Back opts in again: the next restock reaches them on both channels.
	set(back, "")
	produce(t, f, []events.Notification{
		notifiertest.Notification(f.region, "app", back, "sku-o", 2, time.Now()),
		notifiertest.Notification(f.region, "email", back, "sku-o", 2, time.Now()),
	})
	want[events.NotificationID(back, "sku-o", f.region, 2, "app")] = 1
	want[events.NotificationID(back, "sku-o", f.region, 2, "email")] = 1
	f.waitEdge(t, uint64(len(want)), 30*time.Second)
	f.waitCommitted(t, 30*time.Second)
	check("opted back in")
}
