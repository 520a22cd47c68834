package app_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
	"backinstock/topics/optout"
)

// TestOptOutsHonouredBeforeTheProvider: the gateway reads the user's
// opt-out record right before the provider. An unsubscribed user's email
// and an email to a user who opted out of email are not sent: each gets a
// suppressed receipt naming why, is acked and counted; an opt-out of
// another channel does not stop the email; the suppressed notification,
// delivered again after its user opted back in, is sent (the claim was
// released, no marker written).
func TestOptOutsHonouredBeforeTheProvider(t *testing.T) {
	g := newGateway(t, testenv.MailpitOptions{}, nil)
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	defer rdb.Close()
	ctx := context.Background()
	// User ids of this region only: the records are keyed by user alone.
	gone, noEmail, noSMS, plain := g.region+"-gone", g.region+"-noemail", g.region+"-nosms", g.region+"-plain"
	for u, v := range map[string]string{gone: optout.All, noEmail: "email", noSMS: "app,sms"} {
		if err := rdb.Set(ctx, optout.Key(u), v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	g.start()
	ns := map[string]events.Notification{}
	for _, u := range []string{gone, noEmail, noSMS, plain} {
		ns[u] = g.notification(u)
		g.publish(ns[u])
	}
	rs := g.waitReceipts(4)
	g.settled()
	checkFirstAttemptReceipts(t, rs, map[string]wantReceipt{
		ns[gone].NotificationID:    {events.StatusSuppressed, optout.ReasonUnsubscribed},
		ns[noEmail].NotificationID: {events.StatusSuppressed, optout.ReasonOptedOut + ": the user opted out of email"},
		ns[noSMS].NotificationID:   {events.StatusSent, ""},
		ns[plain].NotificationID:   {events.StatusSent, ""},
	})
	for _, r := range rs {
		if err := r.Validate(); err != nil {
			t.Errorf("receipt %s: %v", r.NotificationID, err)
		}
	}
	sentTo := func() map[string]int {
		out := map[string]int{}
		for _, m := range g.messages() {
			for _, to := range m.To {
				out[to.Address]++
			}
		}
		return out
	}
	if got := sentTo(); len(got) != 2 || got[noSMS+"@example.com"] != 1 || got[plain+"@example.com"] != 1 {
		t.Fatalf("mailpit holds mail to %v, want one each to %s and %s", got, noSMS, plain)
	}
	for reason, want := range map[string]float64{optout.ReasonUnsubscribed: 1, optout.ReasonOptedOut: 1} {
		if got := g.metric(`backinstock_gateway_suppressed_total{channel="email",reason="` + reason + `"`); got != want {
			t.Errorf("suppressed_total{reason=%s} = %v, want %v", reason, got, want)
		}
	}

	// Gone opts back in; the same notification delivered again (a copy
	// past the duplicate window) now reaches them.
	if err := rdb.Del(ctx, optout.Key(gone)).Err(); err != nil {
		t.Fatal(err)
	}
	gatewaytest.Publish(t, g.js, ns[gone], "after-opting-back-in")
	rs = g.waitReceipts(5)
	g.settled()
	// Receipts are keyed by notification id: the two of gone's share a
	// partition, in order.
	var goneStatuses []string
	for _, r := range rs {
		if r.NotificationID == ns[gone].NotificationID {
			goneStatuses = append(goneStatuses, r.Status)
		}
	}
	if len(goneStatuses) != 2 || goneStatuses[1] != events.StatusSent {
		t.Fatalf("receipts after opting back in:%s", gatewaytest.Describe(rs))
	}
	if got := sentTo(); got[gone+"@example.com"] != 1 || len(got) != 3 {
		t.Fatalf("mailpit holds mail to %v after %s opted back in", got, gone)
	}
}
