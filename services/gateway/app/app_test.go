package app_test

// Component tests of `gateway run` in-process against real servers: an
// embedded nats-server with the region's edge stream, redis-server, a kfake
// cluster for the receipts, and Mailpit as the SMTP server whose API shows
// what arrived.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"backinstock/services/gateway/app"
	"backinstock/services/gateway/internal/email"
	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/clicklink"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

var env *testenv.Env

// TestMain also fails the package if a test leaves a goroutine behind once
// the servers are stopped: a consumer, worker or keep-alive that outlived
// its stop. go-metrics' meter arbiter is sarama's process-wide singleton.
func TestMain(m *testing.M) {
	code := testenv.Main(m, &env)
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const from = "Shop <shop@shop.example>"

// gateway is one `gateway run` under test and the servers around it.
type gateway struct {
	t      *testing.T
	region string
	js     jetstream.JetStream
	mail   *testenv.Mailpit
	topic  string
	cfg    app.Config
	addr   string
	stop   func() error
}

// newRegion is what every gateway test's region has: a JetStream client,
// the region's edge stream as the notifier makes it, and a receipts topic.
// The caller adds its provider and the config.
func newRegion(t *testing.T) *gateway {
	t.Helper()
	k := env.Kafka(t)
	nc, err := nats.Connect(env.NATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, region: gatewaytest.Region(), js: js, topic: gatewaytest.CreateTopic(t, k, 3)}
	gatewaytest.CreateStreams(t, js, g.region)
	return g
}

// newGateway prepares a region (stream, receipts topic, Mailpit) and a
// config; mp configures Mailpit, mut the gateway. start runs it.
func newGateway(t *testing.T, mp testenv.MailpitOptions, mut func(*app.Config)) *gateway {
	t.Helper()
	k := env.Kafka(t)
	g := newRegion(t)
	g.mail = testenv.NewMailpit(t, mp)
	host, port, _ := net.SplitHostPort(g.mail.SMTPAddr)
	p, _ := strconv.Atoi(port)
	g.cfg = app.Config{
		Kafka: kafka.Config{Brokers: k.Brokers}, RedisURL: env.Redis(t).URL(), NATSURL: env.NATS(t).URL(),
		Region: g.region, HTTPAddr: "127.0.0.1:0", StatusTopic: g.topic,
		// Short waits so retry tests run in seconds; an ack wait long enough
		// that a loaded machine (2 cores, -race, other packages) does not
		// redeliver a message that merely waited in the client's buffer.
		AckWait: 5 * time.Second, MaxBackoff: 20 * time.Second, RetryDelay: 200 * time.Millisecond, MaxAttempts: 30,
		Workers: 4, StopTimeout: 10 * time.Second,
		SMTP: email.Config{Host: host, Port: p, TLS: email.TLSNone, Timeout: 2 * time.Second, From: from},
	}
	if mut != nil {
		mut(&g.cfg)
	}
	return g
}

func (g *gateway) start() {
	t := g.t
	t.Helper()
	cfg := g.cfg
	addr := make(chan string, 1)
	cfg.OnListen = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, zaptest.NewLogger(t), prometheus.NewRegistry()) }()
	select {
	case g.addr = <-addr:
	case err := <-done:
		cancel()
		t.Fatalf("gateway did not start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("gateway did not listen within 30s")
	}
	var once sync.Once
	var err error
	g.stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Errorf("gateway stopped with %v", err)
		}
	})
	testenv.Eventually(t, 30*time.Second, func() bool { code, _ := g.get("/readyz"); return code == http.StatusOK }, "gateway not ready")
}

func (g *gateway) get(path string) (int, string) {
	resp, err := http.Get("http://" + g.addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric is the value of one sample line of /metrics ("name{labels}"),
// matched by prefix; 0 when absent.
func (g *gateway) metric(prefix string) float64 {
	_, body := g.get("/metrics")
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			return f
		}
	}
	return 0
}

func (g *gateway) publish(n events.Notification) { gatewaytest.Publish(g.t, g.js, n, "") }

func (g *gateway) notification(user string) events.Notification {
	return gatewaytest.Notification(g.region, user, "SKU-42", 3)
}

func (g *gateway) messages() []testenv.MailpitSummary {
	g.t.Helper()
	ms, err := g.mail.Messages(context.Background())
	if err != nil {
		g.t.Fatal(err)
	}
	return ms
}

func (g *gateway) receipts() []events.DeliveryStatus {
	return gatewaytest.Receipts(g.t, env.Kafka(g.t), g.topic)
}

// waitReceipts waits until the topic holds n receipts and returns them.
// wantReceipt is a receipt's status and text its reason must contain.
type wantReceipt struct{ status, reason string }

// checkFirstAttemptReceipts wants exactly one receipt per notification of
// want, each decided on the first attempt as want says.
func checkFirstAttemptReceipts(t *testing.T, rs []events.DeliveryStatus, want map[string]wantReceipt) {
	t.Helper()
	if len(rs) != len(want) {
		t.Fatalf("receipts:%s", gatewaytest.Describe(rs))
	}
	for _, r := range rs {
		w := want[r.NotificationID]
		if r.Status != w.status || !strings.Contains(r.Reason, w.reason) || r.Attempt != 1 {
			t.Errorf("receipt %s %s attempt %d %q, want %s with %q at attempt 1", r.NotificationID, r.Status, r.Attempt, r.Reason, w.status, w.reason)
		}
	}
}

func (g *gateway) waitReceipts(n int) []events.DeliveryStatus {
	g.t.Helper()
	var rs []events.DeliveryStatus
	testenv.Eventually(g.t, 60*time.Second, func() bool { rs = g.receipts(); return len(rs) >= n }, "want %d receipts", n)
	return rs
}

// settled waits until the channel's consumer has nothing pending or
// unacknowledged: every message answered for good.
func (g *gateway) settled() {
	g.t.Helper()
	cons, err := g.js.Consumer(context.Background(), topicsedge.StreamName(g.region, "email"), topicsedge.GatewayConsumer("email"))
	if err != nil {
		g.t.Fatal(err)
	}
	testenv.Eventually(g.t, 60*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "messages still pending or unacknowledged")
}

func messageID(n events.Notification) string { return n.NotificationID + "@shop.example" }

// TestNotificationBecomesOneEmail: each notification on the edge is one
// email in Mailpit, in its recipient's locale, with the product and the
// Message-ID derived from the notification id, and one sent receipt.
func TestNotificationBecomesOneEmail(t *testing.T) {
	g := newGateway(t, testenv.MailpitOptions{}, nil)
	g.start()
	en, de := g.notification("alice"), g.notification("bert")
	de.Locale = "de-DE"
	g.publish(en)
	g.publish(de)
	rs := g.waitReceipts(2)
	g.settled()

	msgs := g.messages()
	if len(msgs) != 2 {
		t.Fatalf("mailpit holds %d messages, want 2", len(msgs))
	}
	byID := map[string]testenv.MailpitSummary{}
	for _, m := range msgs {
		byID[m.MessageID] = m
	}
	for _, c := range []struct {
		n       events.Notification
		subject string
	}{{en, "Back in stock: Kettle SKU-42"}, {de, "Wieder da: Kettle SKU-42"}} {
		m, ok := byID[messageID(c.n)]
		if !ok {
			t.Fatalf("no message with Message-ID %s in %+v", messageID(c.n), msgs)
		}
		full, err := g.mail.Message(context.Background(), m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if full.Subject != c.subject || full.To[0].Address != c.n.Contact || full.From.Address != "shop@shop.example" ||
			!strings.Contains(full.HTML, c.n.URL) || !strings.Contains(full.Text, c.n.URL) || !strings.Contains(full.HTML, "Kettle SKU-42") {
			t.Errorf("message %+v", full)
		}
	}
	for _, r := range rs {
		if r.Status != events.StatusSent || r.Provider != "smtp" || r.Attempt != 1 || r.ProviderMessageID != "<"+r.NotificationID+"@shop.example>" ||
			r.Region != g.region || r.Channel != "email" || r.EventID != events.DeliveryEventID(r.NotificationID, 1, events.StatusSent) {
			t.Errorf("receipt %+v", r)
		}
	}
	if got := g.metric(`backinstock_gateway_sent_total{channel="email",provider="smtp"`); got != 2 {
		t.Errorf("sent_total %v, want 2", got)
	}
}

// TestDuplicateSendsNothingMore: the same notification again (a copy past
// the stream's duplicate window, so with another Msg-Id) sends no second
// email; its receipt is written again as the same event.
func TestDuplicateSendsNothingMore(t *testing.T) {
	g := newGateway(t, testenv.MailpitOptions{}, nil)
	g.start()
	n := g.notification("alice")
	g.publish(n)
	g.waitReceipts(1)
	gatewaytest.Publish(t, g.js, n, "replayed-copy")
	rs := g.waitReceipts(2)
	g.settled()
	if msgs := g.messages(); len(msgs) != 1 {
		t.Errorf("mailpit holds %d messages, want 1", len(msgs))
	}
	if rs[0] != rs[1] {
		t.Errorf("the duplicate's receipt differs:%s", gatewaytest.Describe(rs))
	}
	if got := g.metric(`backinstock_gateway_duplicates_total{channel="email"`); got != 1 {
		t.Errorf("duplicates_total %v, want 1", got)
	}
}

// TestCrashPoints abandons the message once at each step of the protocol,
// as a gateway killed there would, and lets JetStream redeliver it. Only
// a crash between the provider's accept and the marker sends twice (the
// documented bound); every case ends with one sent outcome.
func TestCrashPoints(t *testing.T) {
	cases := []struct {
		point  string
		emails int
	}{
		{"after-claim", 1},
		{"after-send", 2},
		{"after-mark", 1},
		{"after-receipt", 1},
	}
	for _, c := range cases {
		t.Run(c.point, func(t *testing.T) {
			var mu sync.Mutex
			crashed := false
			g := newGateway(t, testenv.MailpitOptions{}, func(cfg *app.Config) {
				// The redelivery after the "crash" comes one ack wait later.
				cfg.AckWait, cfg.MaxBackoff, cfg.SMTP.Timeout = time.Second, 4*time.Second, 800*time.Millisecond
				cfg.Crash = func(point string) bool {
					mu.Lock()
					defer mu.Unlock()
					if point != c.point || crashed {
						return false
					}
					crashed = true
					return true
				}
			})
			g.start()
			n := g.notification("alice")
			g.publish(n)
			testenv.Eventually(t, 60*time.Second, func() bool {
				for _, r := range g.receipts() {
					if r.Status == events.StatusSent {
						return true
					}
				}
				return false
			}, "no sent receipt")
			g.settled()
			msgs := g.messages()
			if len(msgs) != c.emails {
				t.Errorf("mailpit holds %d messages, want %d", len(msgs), c.emails)
			}
			for _, m := range msgs {
				if m.MessageID != messageID(n) {
					t.Errorf("Message-ID %s, want %s", m.MessageID, messageID(n))
				}
			}
			sent := map[string]bool{}
			for _, r := range g.receipts() {
				if r.Status != events.StatusSent {
					t.Errorf("receipt %+v", r)
				}
				sent[r.EventID] = true
			}
			if len(sent) != 1 {
				t.Errorf("%d distinct sent events, want 1", len(sent))
			}
		})
	}
}

// TestPermanentFailures: an SMTP 5xx, a notification without an address
// and one whose address is malformed each end with a failed receipt naming
// the reason, acknowledged (no retry); a message that is not a notification
// at all is dropped; the stream keeps flowing past all of them.
func TestPermanentFailures(t *testing.T) {
	g := newGateway(t, testenv.MailpitOptions{AllowedRecipients: `@example\.com$`}, nil)
	g.start()
	refused, none, malformed, good := g.notification("refused"), g.notification("none"), g.notification("malformed"), g.notification("good")
	refused.Contact = "refused@elsewhere.test"
	none.Contact = ""
	g.publish(refused)
	g.publish(none)
	data, err := events.Encode(malformed)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), malformed.Contact, "not-an-address", 1))
	gatewaytest.PublishRaw(t, g.js, topicsedge.Subject(g.region, "email", "malformed"), data, "", malformed.NotificationID)
	gatewaytest.PublishRaw(t, g.js, topicsedge.Subject(g.region, "email", "poison"), []byte("{not json"), "poison-1", "")
	// A notification of another region on this region's subject.
	stray := gatewaytest.Notification("elsewhere-1", "stray", "SKU-42", 3)
	strayData, err := events.Encode(stray)
	if err != nil {
		t.Fatal(err)
	}
	gatewaytest.PublishRaw(t, g.js, topicsedge.Subject(g.region, "email", "stray"), strayData, "", stray.NotificationID)
	g.publish(good)

	rs := g.waitReceipts(5)
	g.settled()
	want := map[string]wantReceipt{
		refused.NotificationID:   {events.StatusFailed, "550"},
		none.NotificationID:      {events.StatusFailed, "no email address"},
		malformed.NotificationID: {events.StatusFailed, "invalid notification: Notification: contact: must be an email address"},
		stray.NotificationID:     {events.StatusFailed, "notification for elsewhere-1/email on the " + g.region + "/email consumer"},
		good.NotificationID:      {events.StatusSent, ""},
	}
	checkFirstAttemptReceipts(t, rs, want)
	if msgs := g.messages(); len(msgs) != 1 || msgs[0].MessageID != messageID(good) {
		t.Errorf("mailpit holds %+v, want the good one only", msgs)
	}
	if got := g.metric(`backinstock_gateway_poison_total{channel="email"`); got != 1 {
		t.Errorf("poison_total %v", got)
	}
	if got := g.metric(`backinstock_gateway_failed_total{channel="email",provider="smtp",reason="smtp_550"`); got != 1 {
		t.Errorf("failed_total{reason=smtp_550} %v", got)
	}
}

// TestSMTPDownThenUp: with the SMTP server down every send fails
// transiently and is retried; once it is back everything is delivered,
// nothing twice.
func TestSMTPDownThenUp(t *testing.T) {
	g := newGateway(t, testenv.MailpitOptions{}, nil)
	g.start()
	g.mail.Stop()
	var ns []events.Notification
	for i := range 5 {
		n := g.notification("u" + strconv.Itoa(i))
		ns = append(ns, n)
		g.publish(n)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		return g.metric(`backinstock_gateway_retries_total{channel="email",provider="smtp",reason="connect"`) >= 5
	}, "no retries while the server is down")
	if rs := g.receipts(); len(rs) != 0 {
		t.Fatalf("receipts while the server is down:%s", gatewaytest.Describe(rs))
	}
	if err := g.mail.Restart(); err != nil {
		t.Fatal(err)
	}
	rs := g.waitReceipts(5)
	g.settled()
	seen := map[string]int{}
	for _, m := range g.messages() {
		seen[m.MessageID]++
	}
	for _, n := range ns {
		if seen[messageID(n)] != 1 {
			t.Errorf("%s arrived %d times", n.UserID, seen[messageID(n)])
		}
	}
	for _, r := range rs {
		if r.Status != events.StatusSent || r.Attempt < 2 {
			t.Errorf("receipt %+v, want sent after a retry", r)
		}
	}
}

// TestGreylistingThenGiveUp: an SMTP 4xx is retried; past the last
// attempt the notification fails for good, acknowledged, with the reason.
func TestGreylistingThenGiveUp(t *testing.T) {
	ctx := context.Background()
	g := newGateway(t, testenv.MailpitOptions{Chaos: true}, func(c *app.Config) { c.MaxAttempts = 3 })
	if err := g.mail.SetChaos(ctx, testenv.MailpitChaos{Recipient: testenv.MailpitTrigger{ErrorCode: 451, Probability: 100}}); err != nil {
		t.Fatal(err)
	}
	g.start()
	n := g.notification("alice")
	g.publish(n)
	rs := g.waitReceipts(1)
	g.settled()
	if r := rs[0]; r.Status != events.StatusFailed || r.Attempt != 3 || !strings.Contains(r.Reason, "gave up after 3 attempts") || !strings.Contains(r.Reason, "451") {
		t.Errorf("receipt %+v", r)
	}
	if got := g.metric(`backinstock_gateway_retries_total{channel="email",provider="smtp",reason="smtp_451"`); got != 2 {
		t.Errorf("retries %v, want 2", got)
	}

	// Greylisting that ends in time: delivered on a later attempt.
	m := g.notification("bert")
	g.publish(m)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return g.metric(`backinstock_gateway_retries_total{channel="email",provider="smtp",reason="smtp_451"`) >= 3
	}, "bert not retried")
	if err := g.mail.SetChaos(ctx, testenv.MailpitChaos{}); err != nil {
		t.Fatal(err)
	}
	rs = g.waitReceipts(2)
	for _, r := range rs {
		if r.NotificationID == m.NotificationID && (r.Status != events.StatusSent || r.Attempt < 2) {
			t.Errorf("receipt %+v", r)
		}
	}
}

// TestTemplateFailingOnOneRecord: a template override that fails on one
// record fails that notification (the receipt names the file); the others
// are delivered.
func TestTemplateFailingOnOneRecord(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "email", "en"), 0o755); err != nil {
		t.Fatal(err)
	}
	tmpl := `{{if eq .UserID "bad"}}{{index .Title 500}}{{end}}{{.Title}} {{.URL}}`
	if err := os.WriteFile(filepath.Join(dir, "email", "en", "body.txt"), []byte(tmpl), 0o644); err != nil {
		t.Fatal(err)
	}
	g := newGateway(t, testenv.MailpitOptions{}, func(c *app.Config) { c.TemplatesDir = dir })
	g.start()
	bad, good := g.notification("bad"), g.notification("good")
	g.publish(bad)
	g.publish(good)
	rs := g.waitReceipts(2)
	g.settled()
	for _, r := range rs {
		switch r.NotificationID {
		case bad.NotificationID:
			if r.Status != events.StatusFailed || !strings.Contains(r.Reason, filepath.Join("email", "en", "body.txt")) {
				t.Errorf("bad: %+v", r)
			}
		case good.NotificationID:
			if r.Status != events.StatusSent {
				t.Errorf("good: %+v", r)
			}
		}
	}
	if msgs := g.messages(); len(msgs) != 1 {
		t.Errorf("mailpit holds %d messages, want 1", len(msgs))
	}
}

// TestStopFinishesAndRestartResumes: a stop in the middle of a run
// finishes and acknowledges what is in flight; the next start delivers the
// rest; no email twice, none missing.
func TestStopFinishesAndRestartResumes(t *testing.T) {
	g := newGateway(t, testenv.MailpitOptions{}, nil)
	g.start()
	const total = 60
	for i := range total {
		g.publish(g.notification("u" + strconv.Itoa(i)))
	}
	testenv.Eventually(t, 30*time.Second, func() bool { n, _ := g.mail.Count(context.Background()); return n >= 5 }, "nothing sent")
	if err := g.stop(); err != nil {
		t.Fatal(err)
	}
	g.start()
	g.waitReceipts(total)
	g.settled()
	seen := map[string]int{}
	for _, m := range g.messages() {
		seen[m.MessageID]++
	}
	if len(seen) != total {
		t.Errorf("%d distinct emails, want %d", len(seen), total)
	}
	for id, c := range seen {
		if c != 1 {
			t.Errorf("%s arrived %d times", id, c)
		}
	}
	if rs := g.receipts(); len(rs) != total {
		t.Errorf("%d receipts, want %d", len(rs), total)
	}
}

// TestEmailCarriesOneClickUnsubscribe: with UNSUBSCRIBE_KEYS and a base
// URL, every email carries List-Unsubscribe (the signed link to the
// wishlist API, scoped to the email channel) and List-Unsubscribe-Post
// (RFC 8058), and its parts show the same link. (The wishlist side, that
// POSTing it unsubscribes and the next restock sends nothing, is tested
// end to end in deploy/devstack.)
func TestEmailCarriesOneClickUnsubscribe(t *testing.T) {
	const keySpec = "k2:a-gateway-test-secret-of-32-bytes-at-least,k1:the-older-secret-still-verifying-links"
	g := newGateway(t, testenv.MailpitOptions{}, func(c *app.Config) {
		c.UnsubscribeKeys, c.UnsubscribeBaseURL = keySpec, "https://shop.example/wishlist/"
	})
	g.start()
	n := g.notification("alice")
	g.publish(n)
	g.waitReceipts(1)
	msgs := g.messages()
	if len(msgs) != 1 {
		t.Fatalf("mailpit holds %d messages, want 1", len(msgs))
	}
	h, err := g.mail.Headers(context.Background(), msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	lu := h["List-Unsubscribe"]
	if len(lu) != 1 || !strings.HasPrefix(lu[0], "<https://shop.example/wishlist"+unsubscribe.Path+"?"+unsubscribe.Param+"=") || !strings.HasSuffix(lu[0], ">") {
		t.Fatalf("List-Unsubscribe = %q", lu)
	}
	if p := h["List-Unsubscribe-Post"]; len(p) != 1 || p[0] != "List-Unsubscribe=One-Click" {
		t.Fatalf("List-Unsubscribe-Post = %q", p)
	}
	link := strings.Trim(lu[0], "<>")
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	keys, _ := unsubscribe.ParseKeys(keySpec)
	claim, err := keys.Verify(u.Query().Get(unsubscribe.Param))
	if err != nil || claim != (unsubscribe.Claim{UserID: n.UserID, Scope: "email", KeyID: "k2"}) {
		t.Fatalf("token claim %+v, %v", claim, err)
	}
	full, err := g.mail.Message(context.Background(), msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(full.Text, link) || !strings.Contains(full.HTML, link) {
		t.Fatalf("the parts do not show the link %s:\n%s\n%s", link, full.Text, full.HTML)
	}
}

// TestEmailLinksThroughTheTrackedLink: with CLICK_KEYS and
// ENGAGEMENT_BASE_URL both parts of the email link to the product only
// through <base>/c/<token>, and the token is the notification's, carrying
// its product URL, signed with the first key. (That following it counts
// and redirects is the engagement service's test; the whole chain through
// Mailpit runs in deploy/devstack.)
func TestEmailLinksThroughTheTrackedLink(t *testing.T) {
	const keySpec = "c2:a-click-test-secret-of-32-bytes-at-least-x,c1:the-older-click-secret-still-verifying"
	g := newGateway(t, testenv.MailpitOptions{}, func(c *app.Config) {
		c.ClickKeys, c.EngagementBaseURL = keySpec, "https://e.shop.example/"
	})
	g.start()
	n := g.notification("dora")
	g.publish(n)
	g.waitReceipts(1)
	msgs := g.messages()
	if len(msgs) != 1 {
		t.Fatalf("mailpit holds %d messages, want 1", len(msgs))
	}
	full, err := g.mail.Message(context.Background(), msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`https://e\.shop\.example/c/([A-Za-z0-9._-]+)`)
	m := re.FindStringSubmatch(full.Text)
	if m == nil {
		t.Fatalf("the text part has no tracked link:\n%s", full.Text)
	}
	if !strings.Contains(full.HTML, `href="`+m[0]+`"`) {
		t.Errorf("the HTML part does not link %s:\n%s", m[0], full.HTML)
	}
	if strings.Contains(full.Text, n.URL) || strings.Contains(full.HTML, n.URL) {
		t.Errorf("the email still links to %s itself", n.URL)
	}
	keys, _ := clicklink.ParseKeys(keySpec)
	c, err := keys.Verify(m[1], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.NotificationID() != n.NotificationID || c.URL != n.URL || c.KeyID != "c2" || c.Channel != events.ChannelEmail ||
		c.Expires.Before(time.Now().Add(29*24*time.Hour)) {
		t.Errorf("token claim %+v", c)
	}
}
