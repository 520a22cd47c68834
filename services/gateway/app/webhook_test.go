package app_test

// Component tests of the webhook provider through app.Run: the shop's
// endpoint is testenv.WebhookReceiver, which verifies each request as the
// Standard Webhooks spec says (signature, timestamp tolerance) and records
// what it accepted per webhook-id.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"backinstock/services/gateway/app"
	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/services/gateway/internal/webhook"
	"backinstock/shared/testenv"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

func newSecret(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// webhookGateway is a gateway delivering email and app through the
// webhook provider to a receiver that knows only the older of the two
// signing secrets (a rotation in progress: the gateway signs with both).
func webhookGateway(t *testing.T) (*gateway, *testenv.WebhookReceiver) {
	t.Helper()
	current, older := newSecret(t), newSecret(t)
	rcv := testenv.NewWebhookReceiver(t, older)
	g := newGateway(t, testenv.MailpitOptions{}, func(c *app.Config) {
		c.Channels = []string{events.ChannelEmail, events.ChannelApp}
		c.ProviderSpec = "email=webhook,app=webhook"
		c.Webhook = webhook.Config{URL: rcv.URL, Secrets: []string{current, older}, Timeout: 2 * time.Second}
	})
	g.start()
	return g, rcv
}

// appNotification is user's notification on the app channel (no contact).
func appNotification(g *gateway, user string) events.Notification {
	n := g.notification(user)
	n.Channel, n.Contact = events.ChannelApp, ""
	n.NotificationID = events.NotificationID(n.UserID, n.SKU, n.Region, n.Episode, n.Channel)
	return n
}

// settledAll waits until both channels' consumers have answered everything.
func (g *gateway) settledAll() {
	g.t.Helper()
	for _, ch := range []string{events.ChannelEmail, events.ChannelApp} {
		cons, err := g.js.Consumer(context.Background(), topicsedge.StreamName(g.region, ch), topicsedge.GatewayConsumer(ch))
		if err != nil {
			g.t.Fatal(err)
		}
		testenv.Eventually(g.t, 60*time.Second, func() bool {
			info, err := cons.Info(context.Background())
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0
		}, "%s: messages still pending or unacknowledged", ch)
	}
}

func noRejects(t *testing.T, rcv *testenv.WebhookReceiver) {
	t.Helper()
	if r := rcv.Rejected(); len(r) != 0 {
		t.Errorf("the receiver refused requests: %v", r)
	}
}

// TestWebhooksDeliveredOnceEach: each notification, on any channel, is one
// verified webhook whose body carries the notification's fields; a
// duplicate on the edge sends nothing more and writes the same receipt.
func TestWebhooksDeliveredOnceEach(t *testing.T) {
	g, rcv := webhookGateway(t)
	ns := []events.Notification{g.notification("alice"), g.notification("bert"), appNotification(g, "carla"), appNotification(g, "dora")}
	for _, n := range ns {
		g.publish(n)
	}
	rs := g.waitReceipts(len(ns))
	g.settledAll()
	noRejects(t, rcv)
	for _, n := range ns {
		if got := rcv.Delivered(n.NotificationID); got != 1 {
			t.Errorf("%s delivered %d times, want 1", n.UserID, got)
		}
		ev, _ := rcv.Event(n.NotificationID)
		if want := events.NewWebhookEvent(n); ev != want {
			t.Errorf("body %+v, want %+v", ev, want)
		}
	}
	for _, r := range rs {
		if r.Status != events.StatusSent || r.Provider != webhook.ProviderName || r.Attempt != 1 || r.ProviderMessageID != "" {
			t.Errorf("receipt %+v", r)
		}
	}
	if got := g.metric(`backinstock_gateway_sent_total{channel="app",provider="webhook"`); got != 2 {
		t.Errorf("sent_total app %v, want 2", got)
	}

	// The same notification again, past the stream's duplicate window.
	gatewaytest.Publish(t, g.js, ns[0], "replayed-copy")
	rs = g.waitReceipts(len(ns) + 1)
	g.settledAll()
	if _, dups, requests := rcv.Counts(); dups != 0 || requests != len(ns) {
		t.Errorf("after the duplicate: %d duplicates, %d requests; want 0 and %d", dups, requests, len(ns))
	}
	var same int
	for _, r := range rs {
		if r.NotificationID == ns[0].NotificationID {
			same++
		}
	}
	if same != 2 || g.metric(`backinstock_gateway_duplicates_total{channel="email"`) != 1 {
		t.Errorf("duplicate: %d receipts of it, want 2:%s", same, gatewaytest.Describe(rs))
	}
}

// TestWebhookGoneFails: a 410 from the endpoint fails that notification
// for good (one request, a failed receipt naming the status, acked); the
// others are delivered.
func TestWebhookGoneFails(t *testing.T) {
	g, rcv := webhookGateway(t)
	gone, ok := g.notification("gone"), g.notification("ok")
	rcv.AnswerID(gone.NotificationID, 410)
	g.publish(gone)
	g.publish(ok)
	rs := g.waitReceipts(2)
	g.settledAll()
	noRejects(t, rcv)
	for _, r := range rs {
		switch r.NotificationID {
		case gone.NotificationID:
			if r.Status != events.StatusFailed || r.Attempt != 1 || !strings.Contains(r.Reason, "410") {
				t.Errorf("gone: %+v", r)
			}
		case ok.NotificationID:
			if r.Status != events.StatusSent {
				t.Errorf("ok: %+v", r)
			}
		}
	}
	if _, _, requests := rcv.Counts(); requests != 2 {
		t.Errorf("%d requests, want 2 (no retry of the 410)", requests)
	}
	if got := g.metric(`backinstock_gateway_failed_total{channel="email",provider="webhook",reason="webhook_410"`); got != 1 {
		t.Errorf("failed_total{reason=webhook_410} %v", got)
	}
}

// TestWebhookUnavailableThenOK: a 503, then a 429 with Retry-After, then
// the endpoint accepts: delivered once, on the third attempt.
func TestWebhookUnavailableThenOK(t *testing.T) {
	g, rcv := webhookGateway(t)
	rcv.Answer(1, 503, "")
	rcv.Answer(1, 429, "1")
	n := g.notification("alice")
	g.publish(n)
	rs := g.waitReceipts(1)
	g.settledAll()
	noRejects(t, rcv)
	if r := rs[0]; r.Status != events.StatusSent || r.Attempt != 3 {
		t.Errorf("receipt %+v, want sent at attempt 3", r)
	}
	if distinct, dups, requests := rcv.Counts(); distinct != 1 || dups != 0 || requests != 3 {
		t.Errorf("receiver: %d distinct, %d duplicates, %d requests; want 1, 0, 3", distinct, dups, requests)
	}
	for _, code := range []string{"webhook_503", "webhook_429"} {
		if got := g.metric(`backinstock_gateway_retries_total{channel="email",provider="webhook",reason="` + code + `"`); got != 1 {
			t.Errorf("retries_total{reason=%s} %v, want 1", code, got)
		}
	}
}

// TestWebhookSettingsAreNamed: a webhook channel needs WEBHOOK_URL and
// well-formed WEBHOOK_SECRETS; each problem names its variable.
func TestWebhookSettingsAreNamed(t *testing.T) {
	base := map[string]string{"REGION": "us-east-1", "GATEWAY_CHANNELS": "sms", "GATEWAY_PROVIDERS": "sms=webhook"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	good := newSecret(t)
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"nothing set", with(), []string{"WEBHOOK_URL: required", "WEBHOOK_SECRETS: required"}},
		{"not a URL", with("WEBHOOK_URL", "shop.example/hooks", "WEBHOOK_SECRETS", good), []string{`WEBHOOK_URL: "shop.example/hooks" is not an http(s) URL`}},
		{"no prefix", with("WEBHOOK_URL", "https://shop.example/hooks", "WEBHOOK_SECRETS", good+","+strings.TrimPrefix(good, "whsec_")), []string{"WEBHOOK_SECRETS: secret 2: does not start with whsec_"}},
		{"short", with("WEBHOOK_URL", "https://shop.example/hooks", "WEBHOOK_SECRETS", "whsec_"+base64.StdEncoding.EncodeToString([]byte("short"))), []string{"WEBHOOK_SECRETS: secret 1: is 5 bytes, want 24 to 64"}},
		{"timeout", with("WEBHOOK_URL", "https://shop.example/hooks", "WEBHOOK_SECRETS", good, "WEBHOOK_TIMEOUT", "30s"), []string{"WEBHOOK_TIMEOUT: 30s is not below GATEWAY_ACK_WAIT 30s"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := bind(t, c.env)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
	if _, err := bind(t, with("WEBHOOK_URL", "https://shop.example/hooks", "WEBHOOK_SECRETS", good)); err != nil {
		t.Errorf("a valid webhook configuration: %v", err)
	}
}
