package fcm_test

// The app channel's provider (push.Provider over fcm.Sender) against the
// FCM stand-in (OAuth2 token endpoint and v1 send API), a real
// redis-server for the per-device progress, and the wishlist device
// route's stand-in for removals.

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"backinstock/services/gateway/internal/devices"
	"backinstock/services/gateway/internal/fcm"
	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/services/gateway/internal/providertest"
	"backinstock/services/gateway/internal/push"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/services/gateway/internal/store"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

type rig struct {
	fcm     *providertest.FCM
	wl      *providertest.Wishlist
	prov    *push.Provider
	sender  *fcm.Sender
	metrics *push.Metrics
	region  string
}

func newRig(t *testing.T, mut func(*fcm.Config)) *rig {
	t.Helper()
	r := &rig{fcm: providertest.NewFCM(t), wl: providertest.NewWishlist(t), region: gatewaytest.Region()}
	cfg := fcm.Config{BaseURL: r.fcm.URL, CredentialsFile: r.fcm.CredentialsFile, Timeout: 5 * time.Second}
	if mut != nil {
		mut(&cfg)
	}
	if err := cfg.Validate(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	s, err := fcm.NewSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	r.sender, r.metrics = s, push.NewMetrics(prometheus.NewRegistry(), r.region)
	r.prov = push.New(s, push.Options{
		Templates: tmpl, Progress: store.New(rdb, r.region, time.Minute, time.Hour), Metrics: r.metrics,
		Remover: devices.New(devices.Config{URL: r.wl.URL, Token: r.wl.Token, Timeout: 5 * time.Second}),
	})
	return r
}

func (r *rig) notification(user string, ds ...events.Device) events.Notification {
	n := gatewaytest.PushNotification(r.region, user, "SKU-7", 2, events.ChannelApp, ds...)
	if err := n.Validate(); err != nil {
		panic(err)
	}
	return n
}

func (r *rig) register(user string, ds ...events.Device) {
	for _, d := range ds {
		r.wl.Register(user, d.ID, d.TokenSHA256())
	}
}

func TestEveryDeviceGetsOneMessage(t *testing.T) {
	r := newRig(t, nil)
	phone, tablet := gatewaytest.FCMDevice("phone"), gatewaytest.FCMDevice("tablet")
	n := r.notification("u1", phone, tablet)
	id, err := r.prov.Send(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	ms := r.fcm.Messages()
	if len(ms) != 2 || ms[0].Token != phone.Token || ms[1].Token != tablet.Token {
		t.Fatalf("messages %+v", ms)
	}
	if id != ms[0].Name || !strings.HasPrefix(id, "projects/backinstock-test/messages/") {
		t.Errorf("provider message id %q, want the first device's message %q", id, ms[0].Name)
	}
	m := ms[0]
	if !strings.Contains(m.Title+m.Body, n.Title) || m.Data["url"] != n.URL || m.Data["notification_id"] != n.NotificationID || m.Data["sku"] != n.SKU {
		t.Errorf("message %+v does not carry the product", m)
	}
	if m.CollapseKey != push.Topic(n) || m.APNSCollapse != push.Topic(n) || len(m.CollapseKey) != 32 {
		t.Errorf("collapse keys %q %q, want %q", m.CollapseKey, m.APNSCollapse, push.Topic(n))
	}
	// The access token is cached: a second notification exchanges no key.
	if _, err := r.prov.Send(context.Background(), r.notification("u2", phone)); err != nil {
		t.Fatal(err)
	}
	if got := r.fcm.Exchanges(); got != 1 {
		t.Errorf("%d token exchanges for 3 sends, want 1", got)
	}
	// Sent again (a redelivery before the marker): nothing reaches FCM.
	if id2, err := r.prov.Send(context.Background(), n); err != nil || id2 != id {
		t.Errorf("resend: %q, %v", id2, err)
	}
	if got := len(r.fcm.Messages()); got != 3 {
		t.Errorf("%d messages after the resend, want 3", got)
	}
}

func TestDeadTokensAreRemoved(t *testing.T) {
	r := newRig(t, nil)
	phone, old, bogus := gatewaytest.FCMDevice("phone"), gatewaytest.FCMDevice("old"), gatewaytest.FCMDevice("bogus")
	r.register("u1", phone, old, bogus)
	r.fcm.Unregister(old.Token, "UNREGISTERED")
	r.fcm.Unregister(bogus.Token, "INVALID_ARGUMENT")

	// One live device: sent, the dead ones removed.
	id, err := r.prov.Send(context.Background(), r.notification("u1", old, phone, bogus))
	if err != nil || id == "" {
		t.Fatalf("send: %q, %v", id, err)
	}
	if r.wl.Has("u1", "old") || r.wl.Has("u1", "bogus") || !r.wl.Has("u1", "phone") {
		t.Errorf("devices left: old %v bogus %v phone %v; removals %+v", r.wl.Has("u1", "old"), r.wl.Has("u1", "bogus"), r.wl.Has("u1", "phone"), r.wl.Removals())
	}
	if got := testutil.ToFloat64(r.metrics.Removals.WithLabelValues(events.ChannelApp, devices.Removed)); got != 2 {
		t.Errorf("removed metric %v, want 2", got)
	}

	// Only dead devices: failed for good, with each device's reason.
	_, err = r.prov.Send(context.Background(), r.notification("u2", old))
	permanent, code := retry.Classify(err)
	if !permanent || code != "fcm_unregistered" || !strings.Contains(err.Error(), "device old") || !strings.Contains(err.Error(), "UNREGISTERED") {
		t.Errorf("all dead: permanent %v code %q: %v", permanent, code, err)
	}
	// u2's "old" is not registered with the wishlist: its removal is a 204
	// all the same (idempotent).
	if got := testutil.ToFloat64(r.metrics.Removals.WithLabelValues(events.ChannelApp, devices.Removed)); got != 3 {
		t.Errorf("removed metric %v, want 3", got)
	}
}

func TestRemovalFailureDoesNotFailTheNotification(t *testing.T) {
	r := newRig(t, nil)
	phone, old := gatewaytest.FCMDevice("phone"), gatewaytest.FCMDevice("old")
	r.register("u1", phone, old)
	r.fcm.Unregister(old.Token, "")
	r.wl.Down(true)
	if _, err := r.prov.Send(context.Background(), r.notification("u1", phone, old)); err != nil {
		t.Fatalf("send with the wishlist API down: %v", err)
	}
	if got := testutil.ToFloat64(r.metrics.Removals.WithLabelValues(events.ChannelApp, "error")); got != 1 {
		t.Errorf("removal errors %v, want 1", got)
	}
	if !r.wl.Has("u1", "old") {
		t.Error("removed although the API was down")
	}
}

func TestTransientFailureRetriesOnlyTheMissingDevices(t *testing.T) {
	r := newRig(t, nil)
	phone, tablet := gatewaytest.FCMDevice("phone"), gatewaytest.FCMDevice("tablet")
	n := r.notification("u1", phone, tablet)
	r.fcm.Fail(providertest.FCMReply{Status: 503, RetryAfter: "7"})
	_, err := r.prov.Send(context.Background(), n)
	permanent, code := retry.Classify(err)
	if permanent || code != "fcm_503" || retry.RetryAfter(err) != 7*time.Second || !strings.Contains(err.Error(), "1 of 2 devices") {
		t.Fatalf("first attempt: permanent %v code %q after %s: %v", permanent, code, retry.RetryAfter(err), err)
	}
	if ms := r.fcm.Messages(); len(ms) != 1 || ms[0].Token != tablet.Token {
		t.Fatalf("after the 503: %+v", ms)
	}
	r.fcm.Fail(providertest.FCMReply{Status: 429, RetryAfter: "2"})
	if _, err := r.prov.Send(context.Background(), n); !strings.Contains(err.Error(), "fcm answered 429") {
		t.Fatalf("second attempt: %v", err)
	}
	id, err := r.prov.Send(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	ms := r.fcm.Messages()
	if len(ms) != 2 || ms[1].Token != phone.Token {
		t.Fatalf("each device once: %+v", ms)
	}
	// The receipt names the first device in the notification's order.
	if id != ms[1].Name {
		t.Errorf("id %q, want the phone's %q", id, ms[1].Name)
	}
	if got := r.fcm.Requests(); got != 4 {
		t.Errorf("%d requests, want 4 (tablet, phone 503, phone 429, phone)", got)
	}
}

func TestNoDevice(t *testing.T) {
	r := newRig(t, nil)
	_, err := r.prov.Send(context.Background(), r.notification("u1"))
	if permanent, code := retry.Classify(err); !permanent || code != "no_device" {
		t.Errorf("no devices: permanent %v code %q: %v", permanent, code, err)
	}
	if r.fcm.Requests() != 0 || r.fcm.Exchanges() != 0 {
		t.Error("FCM was called")
	}
}

// A key the token endpoint refuses (its signature does not verify) and a
// project the key may not send to are the operator's mistakes: transient,
// so the work waits in the stream for the fix.
func TestCredentialProblemsAreTransient(t *testing.T) {
	t.Run("foreign key", func(t *testing.T) {
		r := newRig(t, func(c *fcm.Config) { c.CredentialsFile = otherKey(t, c.CredentialsFile) })
		_, err := r.prov.Send(context.Background(), r.notification("u1", gatewaytest.FCMDevice("phone")))
		if permanent, code := retry.Classify(err); permanent || code != "fcm_auth" || !strings.Contains(err.Error(), "invalid JWT signature") {
			t.Errorf("permanent %v code %q: %v", permanent, code, err)
		}
	})
	t.Run("wrong project", func(t *testing.T) {
		r := newRig(t, func(c *fcm.Config) { c.ProjectID = "someone-else" })
		_, err := r.prov.Send(context.Background(), r.notification("u1", gatewaytest.FCMDevice("phone")))
		if permanent, code := retry.Classify(err); permanent || code != "fcm_403" {
			t.Errorf("permanent %v code %q: %v", permanent, code, err)
		}
	})
}

// otherKey writes a copy of the key file at path with another RSA key.
func otherKey(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sa map[string]string
	if err := json.Unmarshal(data, &sa); err != nil {
		t.Fatal(err)
	}
	k, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	sa["private_key"] = string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	out, _ := json.Marshal(sa)
	p := filepath.Join(t.TempDir(), "other.json")
	if err := os.WriteFile(p, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigValidate(t *testing.T) {
	f := providertest.NewFCM(t)
	noProject := filepath.Join(t.TempDir(), "np.json")
	data, _ := os.ReadFile(f.CredentialsFile)
	var sa map[string]string
	_ = json.Unmarshal(data, &sa)
	delete(sa, "project_id")
	b, _ := json.Marshal(sa)
	_ = os.WriteFile(noProject, b, 0o600)
	notSA := filepath.Join(t.TempDir(), "user.json")
	_ = os.WriteFile(notSA, []byte(`{"type":"authorized_user","client_id":"x"}`), 0o600)
	for _, tc := range []struct {
		name string
		cfg  fcm.Config
		want string
	}{
		{"no key", fcm.Config{BaseURL: fcm.DefaultBaseURL, Timeout: time.Second}, "FCM_CREDENTIALS_FILE: required"},
		{"missing file", fcm.Config{BaseURL: fcm.DefaultBaseURL, Timeout: time.Second, CredentialsFile: "/nonexistent.json"}, "FCM_CREDENTIALS_FILE: open /nonexistent.json"},
		{"not a service account", fcm.Config{BaseURL: fcm.DefaultBaseURL, Timeout: time.Second, CredentialsFile: notSA}, "FCM_CREDENTIALS_FILE: " + notSA},
		{"no project", fcm.Config{BaseURL: fcm.DefaultBaseURL, Timeout: time.Second, CredentialsFile: noProject}, "FCM_PROJECT_ID: required"},
		{"bad URL", fcm.Config{BaseURL: "fcm.googleapis.com", Timeout: time.Second, CredentialsFile: f.CredentialsFile}, "FCM_BASE_URL"},
		{"timeout past the ack wait", fcm.Config{BaseURL: fcm.DefaultBaseURL, Timeout: time.Minute, CredentialsFile: f.CredentialsFile}, "FCM_TIMEOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate(30 * time.Second)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	ok := fcm.Config{BaseURL: fcm.DefaultBaseURL, Timeout: time.Second, CredentialsFile: noProject, ProjectID: "p"}
	if err := ok.Validate(30 * time.Second); err != nil {
		t.Errorf("a project from FCM_PROJECT_ID: %v", err)
	}
}
