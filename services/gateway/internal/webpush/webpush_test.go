package webpush_test

// The web channel's provider (push.Provider over webpush.Sender) against
// the push service stand-in, which verifies the VAPID JWT and decrypts
// every body with the subscription's private key as a browser would; a
// real redis-server holds the per-device progress, the wishlist device
// route's stand-in takes the removals.

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"backinstock/services/gateway/internal/devices"
	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/services/gateway/internal/providertest"
	"backinstock/services/gateway/internal/push"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/services/gateway/internal/store"
	"backinstock/services/gateway/internal/webpush"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

type rig struct {
	ps      *providertest.WebPush
	wl      *providertest.Wishlist
	prov    *push.Provider
	metrics *push.Metrics
	region  string
	cfg     webpush.Config
}

func newRig(t *testing.T) *rig {
	t.Helper()
	pub, priv, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{ps: providertest.NewWebPush(t, pub), wl: providertest.NewWishlist(t), region: gatewaytest.Region(),
		cfg: webpush.Config{PublicKey: pub, PrivateKey: priv, Subject: "mailto:push@shop.example", TTL: 6 * time.Hour, Urgency: "high", Timeout: 5 * time.Second}}
	if err := r.cfg.Validate(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	tmpl, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	r.metrics = push.NewMetrics(prometheus.NewRegistry(), r.region)
	r.prov = push.New(webpush.NewSender(r.cfg), push.Options{
		Templates: tmpl, Progress: store.New(rdb, r.region, time.Minute, time.Hour), Metrics: r.metrics,
		Remover: devices.New(devices.Config{URL: r.wl.URL, Token: r.wl.Token, Timeout: 5 * time.Second}),
	})
	return r
}

func (r *rig) notification(user string, ds ...events.Device) events.Notification {
	n := gatewaytest.PushNotification(r.region, user, "SKU-9", 4, events.ChannelWeb, ds...)
	if err := n.Validate(); err != nil {
		panic(err)
	}
	return n
}

func payload(t *testing.T, m providertest.WebPushMessage) webpush.Payload {
	t.Helper()
	var p webpush.Payload
	dec := json.NewDecoder(strings.NewReader(string(m.Plaintext)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("payload %q: %v", m.Plaintext, err)
	}
	return p
}

func TestTheBrowserDecryptsThePush(t *testing.T) {
	r := newRig(t)
	laptop, phone := r.ps.Subscribe(t, "laptop"), r.ps.Subscribe(t, "phone")
	n := r.notification("u1", laptop, phone)
	id, err := r.prov.Send(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	ms := r.ps.Messages()
	if len(ms) != 2 || ms[0].SubscriptionID != providertest.SubscriptionID(laptop) || ms[1].SubscriptionID != providertest.SubscriptionID(phone) {
		t.Fatalf("messages %+v", ms)
	}
	if id != ms[0].Location {
		t.Errorf("provider message id %q, want the first Location %q", id, ms[0].Location)
	}
	for _, m := range ms {
		p := payload(t, m)
		if !strings.Contains(p.Title+p.Body, n.Title) || p.URL != n.URL || p.NotificationID != n.NotificationID {
			t.Errorf("payload %+v does not carry the product of %+v", p, n)
		}
		if m.TTL != 6*3600 || m.Urgency != "high" || m.Topic != push.Topic(n) || m.Subject != "mailto:push@shop.example" {
			t.Errorf("headers TTL %d Urgency %q Topic %q sub %q", m.TTL, m.Urgency, m.Topic, m.Subject)
		}
		// One record, padded to the whole 4 KiB: the length tells nothing.
		if m.RecordSize != 4096 || m.BodySize != 4096 {
			t.Errorf("record size %d, body %d bytes", m.RecordSize, m.BodySize)
		}
	}
}

func TestGoneSubscriptionsAreRemoved(t *testing.T) {
	r := newRig(t)
	laptop, old := r.ps.Subscribe(t, "laptop"), r.ps.Subscribe(t, "old")
	for _, d := range []events.Device{laptop, old} {
		r.wl.Register("u1", d.ID, d.TokenSHA256())
	}
	r.ps.Unsubscribe(old)
	if _, err := r.prov.Send(context.Background(), r.notification("u1", old, laptop)); err != nil {
		t.Fatal(err)
	}
	if r.wl.Has("u1", "old") || !r.wl.Has("u1", "laptop") {
		t.Errorf("removals %+v", r.wl.Removals())
	}
	// The only subscription gone: failed for good.
	_, err := r.prov.Send(context.Background(), r.notification("u2", old))
	if permanent, code := retry.Classify(err); !permanent || code != "webpush_410" {
		t.Errorf("permanent %v code %q: %v", permanent, code, err)
	}
	// An endpoint the push service never issued: 404, also gone.
	stray := old
	stray.ID, stray.Endpoint = "stray", r.ps.URL+"/push/never-issued"
	_, err = r.prov.Send(context.Background(), r.notification("u3", stray))
	if permanent, code := retry.Classify(err); !permanent || code != "webpush_404" {
		t.Errorf("permanent %v code %q: %v", permanent, code, err)
	}
	if got := testutil.ToFloat64(r.metrics.Devices.WithLabelValues(events.ChannelWeb, webpush.ProviderName, "gone")); got != 3 {
		t.Errorf("gone devices %v, want 3", got)
	}
}

func TestFailures(t *testing.T) {
	r := newRig(t)
	laptop := r.ps.Subscribe(t, "laptop")
	n := r.notification("u1", laptop)

	r.ps.Fail(providertest.WebPushReply{Status: 503, RetryAfter: "3"})
	_, err := r.prov.Send(context.Background(), n)
	if permanent, code := retry.Classify(err); permanent || code != "webpush_503" || retry.RetryAfter(err) != 3*time.Second {
		t.Errorf("503: permanent %v code %q: %v", permanent, code, err)
	}
	if _, err := r.prov.Send(context.Background(), n); err != nil {
		t.Fatalf("after the 503: %v", err)
	}
	if got := len(r.ps.Messages()); got != 1 {
		t.Errorf("%d messages, want 1", got)
	}

	r.ps.Fail(providertest.WebPushReply{Status: 413})
	_, err = r.prov.Send(context.Background(), r.notification("u2", laptop))
	if permanent, code := retry.Classify(err); !permanent || code != "webpush_413" {
		t.Errorf("413: permanent %v code %q: %v", permanent, code, err)
	}
	if len(r.wl.Removals()) != 0 {
		t.Errorf("a 413 removed the subscription: %+v", r.wl.Removals())
	}
}

// A subscription made with another application server key (or a gateway
// with the wrong key) answers 403: permanent, and the subscription stays.
func TestAnotherVAPIDKey(t *testing.T) {
	r := newRig(t)
	other, _, _ := webpush.GenerateKeys()
	r.ps.VAPIDKey = other
	_, err := r.prov.Send(context.Background(), r.notification("u1", r.ps.Subscribe(t, "laptop")))
	if permanent, code := retry.Classify(err); !permanent || code != "webpush_403" {
		t.Errorf("permanent %v code %q: %v", permanent, code, err)
	}
	if len(r.wl.Removals()) != 0 {
		t.Error("removed")
	}
}

func TestConfigValidate(t *testing.T) {
	pub, priv, _ := webpush.GenerateKeys()
	otherPub, _, _ := webpush.GenerateKeys()
	ok := webpush.Config{PublicKey: pub, PrivateKey: priv, Subject: "https://shop.example/contact", TTL: time.Hour, Urgency: "normal", Timeout: time.Second}
	if err := ok.Validate(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mut  func(*webpush.Config)
		want string
	}{
		{"no keys", func(c *webpush.Config) { c.PublicKey, c.PrivateKey = "", "" }, "VAPID_PRIVATE_KEY"},
		{"keys of two pairs", func(c *webpush.Config) { c.PublicKey = otherPub }, "is not the public key of VAPID_PRIVATE_KEY"},
		{"not base64url", func(c *webpush.Config) { c.PrivateKey = "a+b/" }, "VAPID_PRIVATE_KEY: not base64url"},
		{"subject", func(c *webpush.Config) { c.Subject = "push@shop.example" }, "VAPID_SUBJECT"},
		{"ttl", func(c *webpush.Config) { c.TTL = 60 * 24 * time.Hour }, "WEBPUSH_TTL"},
		{"urgency", func(c *webpush.Config) { c.Urgency = "urgent" }, "WEBPUSH_URGENCY"},
		{"timeout", func(c *webpush.Config) { c.Timeout = time.Minute }, "WEBPUSH_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mut(&c)
			if err := c.Validate(30 * time.Second); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
