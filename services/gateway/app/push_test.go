package app_test

// Component tests of the push channels through `gateway run`: app over the
// FCM stand-in (OAuth2 token endpoint and v1 API), web over the push
// service stand-in (VAPID verified, payload decrypted as a browser
// would), dead devices removed through the wishlist device route's
// stand-in; the edge, Redis and the receipts topic are the real servers.

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"backinstock/services/gateway/app"
	"backinstock/services/gateway/internal/devices"
	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/services/gateway/internal/providertest"
	"backinstock/services/gateway/internal/webpush"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

// pushGateway is a gateway delivering app and web, and its stand-ins.
type pushGateway struct {
	*gateway
	fcm *providertest.FCM
	ps  *providertest.WebPush
	wl  *providertest.Wishlist
}

func newPushGateway(t *testing.T, mut func(*app.Config)) *pushGateway {
	t.Helper()
	k := env.Kafka(t)
	pub, priv, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	g := &pushGateway{
		gateway: newRegion(t),
		fcm:     providertest.NewFCM(t), ps: providertest.NewWebPush(t, pub), wl: providertest.NewWishlist(t),
	}
	g.cfg = app.Config{
		Kafka: kafka.Config{Brokers: k.Brokers}, RedisURL: env.Redis(t).URL(), NATSURL: env.NATS(t).URL(),
		Region: g.region, HTTPAddr: "127.0.0.1:0", StatusTopic: g.topic,
		Channels: []string{events.ChannelApp, events.ChannelWeb}, ProviderSpec: "app=fcm,web=webpush",
		AckWait: 5 * time.Second, MaxBackoff: 20 * time.Second, RetryDelay: 200 * time.Millisecond, MaxAttempts: 30,
		Workers: 4, StopTimeout: 10 * time.Second,
		FCM:      app.Config{}.FCM,
		WebPush:  app.Config{}.WebPush,
		Wishlist: devices.Config{URL: g.wl.URL, Token: g.wl.Token},
	}
	g.cfg.FCM.BaseURL, g.cfg.FCM.CredentialsFile, g.cfg.FCM.Timeout = g.fcm.URL, g.fcm.CredentialsFile, 2*time.Second
	g.cfg.WebPush.PublicKey, g.cfg.WebPush.PrivateKey, g.cfg.WebPush.Subject = pub, priv, "mailto:push@shop.example"
	g.cfg.WebPush.Timeout = 2 * time.Second
	if mut != nil {
		mut(&g.cfg)
	}
	return g
}

func (g *pushGateway) push(user, channel string, ds ...events.Device) events.Notification {
	g.t.Helper()
	n := gatewaytest.PushNotification(g.region, user, "SKU-42", 3, channel, ds...)
	if err := n.Validate(); err != nil {
		g.t.Fatal(err)
	}
	g.publish(n)
	return n
}

// register records the devices with the wishlist stand-in.
func (g *pushGateway) register(user string, ds ...events.Device) {
	for _, d := range ds {
		g.wl.Register(user, d.ID, d.TokenSHA256())
	}
}

// settledOn waits until ch's consumer has nothing pending or unacked.
func (g *pushGateway) settledOn(ch string) {
	g.t.Helper()
	cons, err := g.js.Consumer(context.Background(), topicsedge.StreamName(g.region, ch), topicsedge.GatewayConsumer(ch))
	if err != nil {
		g.t.Fatal(err)
	}
	testenv.Eventually(g.t, 60*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "%s messages still pending or unacknowledged", ch)
}

// byNotification indexes receipts by notification id (the last one wins).
func byNotification(rs []events.DeliveryStatus) map[string]events.DeliveryStatus {
	out := map[string]events.DeliveryStatus{}
	for _, r := range rs {
		out[r.NotificationID] = r
	}
	return out
}

// tokens counts the FCM messages per registration token.
func tokens(ms []providertest.FCMMessage) map[string]int {
	out := map[string]int{}
	for _, m := range ms {
		out[m.Token]++
	}
	return out
}

// TestAppPushReachesEveryDevice: a notification with two devices is two
// FCM messages and one sent receipt naming the first; the same
// notification again sends nothing more.
func TestAppPushReachesEveryDevice(t *testing.T) {
	g := newPushGateway(t, nil)
	g.start()
	phone, tablet := gatewaytest.FCMDevice("phone"), gatewaytest.FCMDevice("tablet")
	n := g.push("alice", events.ChannelApp, phone, tablet)
	rs := g.waitReceipts(1)
	g.settledOn(events.ChannelApp)
	ms := g.fcm.Messages()
	if len(ms) != 2 || ms[0].Token != phone.Token || ms[1].Token != tablet.Token {
		t.Fatalf("FCM messages %+v", ms)
	}
	for _, m := range ms {
		if m.Title != "Back in stock: Kettle SKU-42" || !strings.Contains(m.Body, "Kettle SKU-42") || m.Data["url"] != n.URL || m.Data["notification_id"] != n.NotificationID {
			t.Errorf("message %+v", m)
		}
	}
	r := rs[0]
	if r.Status != events.StatusSent || r.Provider != "fcm" || r.ProviderMessageID != ms[0].Name || r.Channel != events.ChannelApp || r.Attempt != 1 {
		t.Errorf("receipt %+v", r)
	}

	gatewaytest.Publish(t, g.js, n, "replayed-copy")
	rs = g.waitReceipts(2)
	g.settledOn(events.ChannelApp)
	if got := len(g.fcm.Messages()); got != 2 {
		t.Errorf("%d FCM messages after the duplicate, want 2", got)
	}
	if rs[0] != rs[1] {
		t.Errorf("the duplicate's receipt differs:%s", gatewaytest.Describe(rs))
	}
	if got := g.metric(`backinstock_gateway_push_devices_total{channel="app",outcome="sent",provider="fcm"`); got != 2 {
		t.Errorf("push_devices_total sent %v, want 2", got)
	}
}

// TestUnregisteredTokenIsRemoved: a token FCM answers UNREGISTERED is
// removed from the user's devices; the notification is sent while another
// device took it, failed (with the reason) when none did; the stream
// flows on.
func TestUnregisteredTokenIsRemoved(t *testing.T) {
	g := newPushGateway(t, nil)
	g.start()
	old, phone := gatewaytest.FCMDevice("old"), gatewaytest.FCMDevice("phone")
	g.register("alice", old, phone)
	g.register("bert", old)
	g.fcm.Unregister(old.Token, "UNREGISTERED")
	a := g.push("alice", events.ChannelApp, old, phone)
	b := g.push("bert", events.ChannelApp, old)
	c := g.push("carl", events.ChannelApp) // no device at all
	rs := byNotification(g.waitReceipts(3))
	g.settledOn(events.ChannelApp)

	if r := rs[a.NotificationID]; r.Status != events.StatusSent {
		t.Errorf("alice (one live device): %+v", r)
	}
	if r := rs[b.NotificationID]; r.Status != events.StatusFailed || !strings.Contains(r.Reason, "UNREGISTERED") || !strings.Contains(r.Reason, "device old") || !strings.Contains(r.Reason, "removed") {
		t.Errorf("bert (only a dead device): %+v", r)
	}
	if r := rs[c.NotificationID]; r.Status != events.StatusFailed || !strings.Contains(r.Reason, "no fcm device") {
		t.Errorf("carl (no device): %+v", r)
	}
	if g.wl.Has("alice", "old") || g.wl.Has("bert", "old") || !g.wl.Has("alice", "phone") {
		t.Errorf("wishlist removals %+v", g.wl.Removals())
	}
	if got := g.metric(`backinstock_gateway_failed_total{channel="app",provider="fcm",reason="fcm_unregistered"`); got != 1 {
		t.Errorf("failed_total fcm_unregistered %v, want 1", got)
	}
	if got := g.metric(`backinstock_gateway_push_device_removals_total{channel="app",region="` + g.region + `",result="removed"`); got != 2 {
		t.Errorf("removals %v, want 2", got)
	}
}

// TestWebPushTheBrowserReads: the push service decrypts what a browser
// would show; a subscription answered 410 is removed, and the
// notification fails when it was the only one.
func TestWebPushTheBrowserReads(t *testing.T) {
	g := newPushGateway(t, nil)
	g.start()
	laptop, old := g.ps.Subscribe(t, "laptop"), g.ps.Subscribe(t, "old")
	g.register("alice", laptop, old)
	g.ps.Unsubscribe(old)
	a := g.push("alice", events.ChannelWeb, laptop, old)
	b := g.push("bert", events.ChannelWeb, old)
	rs := byNotification(g.waitReceipts(2))
	g.settledOn(events.ChannelWeb)

	ms := g.ps.Messages()
	if len(ms) != 1 {
		t.Fatalf("push service holds %d messages, want 1", len(ms))
	}
	var p webpush.Payload
	if err := json.Unmarshal(ms[0].Plaintext, &p); err != nil {
		t.Fatalf("payload %q: %v", ms[0].Plaintext, err)
	}
	if p.Title != "Back in stock: Kettle SKU-42" || p.URL != a.URL || p.NotificationID != a.NotificationID || !strings.Contains(p.Body, "Kettle SKU-42") {
		t.Errorf("the browser shows %+v", p)
	}
	if r := rs[a.NotificationID]; r.Status != events.StatusSent || r.Provider != "webpush" || r.ProviderMessageID != ms[0].Location {
		t.Errorf("alice: %+v", r)
	}
	if r := rs[b.NotificationID]; r.Status != events.StatusFailed || !strings.Contains(r.Reason, "410") {
		t.Errorf("bert: %+v", r)
	}
	if g.wl.Has("alice", "old") || !g.wl.Has("alice", "laptop") {
		t.Errorf("wishlist removals %+v", g.wl.Removals())
	}
}

// TestPushServiceDownThenUp: FCM answers 503 (with Retry-After) for one
// device and the push service 503 then 429; each device still gets the
// notification exactly once, with one sent receipt each.
func TestPushServiceDownThenUp(t *testing.T) {
	g := newPushGateway(t, nil)
	g.fcm.Fail(providertest.FCMReply{Status: 503, RetryAfter: "1"})
	g.ps.Fail(providertest.WebPushReply{Status: 503}, providertest.WebPushReply{Status: 429, RetryAfter: "1"})
	g.start()
	phone, tablet := gatewaytest.FCMDevice("phone"), gatewaytest.FCMDevice("tablet")
	laptop := g.ps.Subscribe(t, "laptop")
	a := g.push("alice", events.ChannelApp, phone, tablet)
	w := g.push("alice", events.ChannelWeb, laptop)
	testenv.Eventually(t, 60*time.Second, func() bool {
		rs := byNotification(g.receipts())
		return rs[a.NotificationID].Status == events.StatusSent && rs[w.NotificationID].Status == events.StatusSent
	}, "no sent receipts")
	g.settledOn(events.ChannelApp)
	g.settledOn(events.ChannelWeb)
	if got := tokens(g.fcm.Messages()); len(got) != 2 || got[phone.Token] != 1 || got[tablet.Token] != 1 {
		t.Errorf("FCM messages per token %v, want one each", got)
	}
	if got := g.fcm.Requests(); got != 3 {
		t.Errorf("%d FCM requests, want 3 (one 503)", got)
	}
	if got := len(g.ps.Messages()); got != 1 || g.ps.Requests() != 3 {
		t.Errorf("push service: %d messages of %d requests, want 1 of 3", got, g.ps.Requests())
	}
	for _, r := range g.receipts() {
		if r.Status != events.StatusSent || r.Attempt < 2 {
			t.Errorf("receipt %+v", r)
		}
	}
	if got := g.metric(`backinstock_gateway_retries_total{channel="app",provider="fcm",reason="fcm_503"`); got != 1 {
		t.Errorf("app retries %v, want 1", got)
	}
}

// TestPushCrashAfterSend: a gateway dying after the devices accepted, before
// the delivered marker, sends to no device again: each device's accept is
// recorded as it happens.
func TestPushCrashAfterSend(t *testing.T) {
	var mu sync.Mutex
	crashed := false
	g := newPushGateway(t, func(cfg *app.Config) {
		cfg.AckWait, cfg.MaxBackoff = time.Second, 4*time.Second
		cfg.FCM.Timeout, cfg.WebPush.Timeout = 800*time.Millisecond, 800*time.Millisecond
		cfg.Crash = func(point string) bool {
			mu.Lock()
			defer mu.Unlock()
			if point != "after-send" || crashed {
				return false
			}
			crashed = true
			return true
		}
	})
	g.start()
	phone, tablet := gatewaytest.FCMDevice("phone"), gatewaytest.FCMDevice("tablet")
	n := g.push("alice", events.ChannelApp, phone, tablet)
	testenv.Eventually(t, 60*time.Second, func() bool { return len(g.receipts()) > 0 }, "no receipt")
	g.settledOn(events.ChannelApp)
	if got := tokens(g.fcm.Messages()); got[phone.Token] != 1 || got[tablet.Token] != 1 {
		t.Errorf("FCM messages per token %v, want one each", got)
	}
	// Attempt 2 or later: the redelivery may first find the dead holder's
	// claim (busy) until it lapses.
	for _, r := range g.receipts() {
		if r.Status != events.StatusSent || r.NotificationID != n.NotificationID || r.Attempt < 2 {
			t.Errorf("receipt %+v", r)
		}
	}
}
