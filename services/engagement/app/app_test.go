package app_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/engagement/app"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/clicklink"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

const (
	token = "test-token"
	keysA = "k1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

// client is a mail client following a link: no cookies, no redirects
// followed (the test reads the 302 itself), every answer held to the
// OpenAPI document.
var client = &http.Client{
	Timeout:       10 * time.Second,
	Transport:     &testenv.Contract{Doc: "../openapi.yaml"},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type service struct {
	base  string
	topic string
	reg   *prometheus.Registry
	now   atomic.Pointer[time.Time]
	keys  clicklink.Keys
	k     *testenv.Kafka
	cfg   app.Config
	// stop ends the service and waits for it (also at the test's end).
	stop func()
}

// start runs the engagement service against real Redis and kfake, on a
// topic of its own, with a clock the test moves; mut changes the config.
func start(t *testing.T, mut ...func(*app.Config)) *service {
	t.Helper()
	k := env.Kafka(t)
	s := &service{topic: testenv.Unique(t, "engagement.clicks"), reg: prometheus.NewRegistry(), k: k}
	adm, err := kafka.NewClusterAdmin(kafka.Config{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	if err := adm.CreateTopic(s.topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	adm.Close()
	now := time.Now().UTC().Truncate(time.Second)
	s.now.Store(&now)
	s.keys, _ = clicklink.ParseKeys(keysA)
	addr := make(chan string, 1)
	cfg := app.Config{
		Kafka: kafka.Config{Brokers: k.Brokers}, RedisURL: env.Redis(t).URL(), HTTPAddr: "127.0.0.1:0",
		APIToken: token, ClickKeys: keysA, ClicksTopic: s.topic,
		OnListen: func(a string) { addr <- a }, Now: func() time.Time { return *s.now.Load() },
	}
	for _, m := range mut {
		m(&cfg)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var runErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		runErr = app.Run(ctx, cfg, zap.NewNop(), s.reg)
	}()
	select {
	case a := <-addr:
		s.base = "http://" + a
	case <-time.After(30 * time.Second):
		cancel()
		wg.Wait()
		t.Fatalf("engagement did not listen: %v", runErr)
	}
	s.cfg = cfg
	var once sync.Once
	s.stop = func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			if runErr != nil && !errors.Is(runErr, context.Canceled) {
				t.Errorf("run: %v", runErr)
			}
		})
	}
	t.Cleanup(s.stop)
	return s
}

func (s *service) link(t *testing.T, user, sku string) clicklink.Link {
	t.Helper()
	return clicklink.Link{UserID: user, SKU: sku, Region: "eu-west-1", Channel: events.ChannelEmail, Episode: 2,
		URL: "https://shop.example/p/" + sku + "?utm_source=restock", Expires: s.now.Load().Add(30 * 24 * time.Hour)}
}

func (s *service) url(t *testing.T, l clicklink.Link) string {
	t.Helper()
	u, err := s.keys.URL(s.base, l)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// counts reads a notification's counters through the API.
func (s *service) counts(t *testing.T, nid string) (total, unique int64) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.base+"/v1/notifications/"+nid+"/clicks", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct {
		Total, Unique int64
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("clicks of %s: %d", nid, resp.StatusCode)
	}
	if err := decodeJSON(resp.Body, &c); err != nil {
		t.Fatal(err)
	}
	return c.Total, c.Unique
}

// clicks reads every click event on the service's topic.
func (s *service) clicks(t *testing.T) []events.ClickEvent {
	t.Helper()
	cl, err := kafka.NewClient(kafka.Config{Brokers: s.k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []events.ClickEvent
	testenv.ReadTopic(t, cl, s.topic, func(m *sarama.ConsumerMessage) {
		c, err := events.DecodeClickEvent(m.Value)
		if err != nil {
			t.Fatalf("click at %d/%d: %v", m.Partition, m.Offset, err)
		}
		h := kafka.ConsumerHeaders(m)
		if string(m.Key) != c.NotificationID || h.Get(events.HeaderSchema) != "ClickEvent/1" || !events.ValidTraceparent(h.Get(events.HeaderTraceparent)) {
			t.Fatalf("click record key %q headers %v", m.Key, h.Keys())
		}
		out = append(out, c)
	})
	return out
}

// TestTrackedLinkRedirectsAndCounts: a link fetched as a mail client
// fetches it is a 302 to the product URL it carries and one unique click;
// the second fetch makes total 2, unique 1; each fetch is one click event
// with the notification's fields; the counters show in the metrics.
func TestTrackedLinkRedirectsAndCounts(t *testing.T) {
	s := start(t)
	l := s.link(t, "alice", "SKU-1")
	nid := l.NotificationID()
	u := s.url(t, l)
	if total, unique := s.counts(t, nid); total != 0 || unique != 0 {
		t.Fatalf("before any click: total %d unique %d", total, unique)
	}
	for i, want := range []struct{ total, unique int64 }{{1, 1}, {2, 1}} {
		resp, _ := get(t, u)
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != l.URL {
			t.Fatalf("fetch %d: %d Location %q, want 302 to %s", i+1, resp.StatusCode, resp.Header.Get("Location"), l.URL)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || len(resp.Cookies()) != 0 {
			t.Errorf("fetch %d: Cache-Control %q, cookies %v", i+1, resp.Header.Get("Cache-Control"), resp.Cookies())
		}
		if total, unique := s.counts(t, nid); total != want.total || unique != want.unique {
			t.Fatalf("after fetch %d: total %d unique %d, want %d and %d", i+1, total, unique, want.total, want.unique)
		}
	}
	// Another notification's link counts on its own.
	other := s.link(t, "bob", "SKU-1")
	if resp, _ := get(t, s.url(t, other)); resp.StatusCode != http.StatusFound {
		t.Fatalf("bob's link: %d", resp.StatusCode)
	}
	// HEAD (a link checker) is redirected, not counted.
	if resp, err := client.Head(u); err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	if total, _ := s.counts(t, nid); total != 2 {
		t.Errorf("after a HEAD total %d, want 2", total)
	}

	cs := s.clicks(t)
	var mine []events.ClickEvent
	for _, c := range cs {
		if c.NotificationID == nid {
			mine = append(mine, c)
		}
	}
	if len(cs) != 3 || len(mine) != 2 || mine[0].EventID == mine[1].EventID {
		t.Fatalf("click events %+v, want 2 of %s (distinct ids) and 1 of bob's", cs, nid)
	}
	c := mine[0]
	if c.Type != events.ClickTypeClicked || c.UserID != "alice" || c.SKU != "SKU-1" || c.Region != "eu-west-1" || c.Channel != events.ChannelEmail ||
		c.Episode != 2 || c.URL != l.URL || !c.At.Equal(*s.now.Load()) {
		t.Errorf("click event %+v", c)
	}

	clicks := counter(t, s.reg, "backinstock_engagement_clicks_total", "email", "eu-west-1")
	unique := counter(t, s.reg, "backinstock_engagement_unique_clicks_total", "email", "eu-west-1")
	if clicks != 3 || unique != 2 {
		t.Errorf("metrics: clicks %v unique %v, want 3 and 2", clicks, unique)
	}
}

// TestBadLinksAre404WithoutARedirect: tampered, truncated, forged,
// expired and garbage links answer the plain 404 page with no Location,
// count nothing and write no event.
func TestBadLinksAre404WithoutARedirect(t *testing.T) {
	s := start(t)
	l := s.link(t, "carol", "SKU-2")
	good := s.url(t, l)
	tok := strings.TrimPrefix(good, s.base+clicklink.Path)
	parts := strings.Split(tok, ".")
	evil := append([]string(nil), parts...)
	evil[8] = "aHR0cHM6Ly9ldmlsLmV4YW1wbGUv" // https://evil.example/
	forgedKeys, _ := clicklink.ParseKeys("k1:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb")
	forged, _ := forgedKeys.URL(s.base, l)
	otherKid, _ := clicklink.ParseKeys("k9:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
	unknown, _ := otherKid.URL(s.base, l)
	expiring := l
	expiring.Expires = s.now.Load().Add(time.Minute)
	expired := s.url(t, expiring)
	later := s.now.Load().Add(2 * time.Minute)
	s.now.Store(&later)

	cases := map[string]string{
		"another URL under the MAC": s.base + clicklink.Path + strings.Join(evil, "."),
		"truncated":                 good[:len(good)-5],
		"another user":              strings.Replace(good, ".carol.", ".carox.", 1),
		"forged secret":             forged,
		"unknown key":               unknown,
		"expired":                   expired,
		"garbage":                   s.base + "/c/hello",
		"empty":                     s.base + "/c/",
		"deeper path":               s.base + "/c/" + tok + "/x",
		"open redirect attempt":     s.base + "/c/https:%2F%2Fevil.example",
	}
	for name, u := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body := get(t, u)
			if resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
				t.Fatalf("%d Location %q, want 404 without one", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, "This link does not work") {
				t.Errorf("page %q %q", resp.Header.Get("Content-Type"), body)
			}
		})
	}
	if total, _ := s.counts(t, l.NotificationID()); total != 0 {
		t.Errorf("bad links counted %d clicks", total)
	}
	if cs := s.clicks(t); len(cs) != 0 {
		t.Errorf("bad links wrote %d click events", len(cs))
	}
	if v := counter(t, s.reg, "backinstock_engagement_click_rejections_total", "expired"); v != 1 {
		t.Errorf("expired rejections %v, want 1", v)
	}
	if v := counter(t, s.reg, "backinstock_engagement_click_rejections_total", "bad_signature"); v != 3 {
		t.Errorf("bad_signature rejections %v, want 3 (another URL, another user, a forged secret)", v)
	}
}

// TestAPIRequiresTheToken: the /v1 API answers only with the bearer token
// and names a bad notification id.
func TestAPIRequiresTheToken(t *testing.T) {
	s := start(t)
	resp, _ := get(t, s.base+"/v1/notifications/abc/clicks")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, s.base+"/v1/notifications/a%2Eb/clicks", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), "notification_id: must match") {
		t.Errorf("bad id: %d %s", resp.StatusCode, b)
	}
}

// TestClickRedirectedWhenItsEventCannotBeWritten: the click event's topic
// does not exist (auto-creation is off), so the write fails; the person
// is redirected all the same, the click counted in Redis, the failure in
// the metrics.
func TestClickRedirectedWhenItsEventCannotBeWritten(t *testing.T) {
	s := start(t, func(c *app.Config) {
		c.ClicksTopic, c.RequestTimeout = testenv.Unique(t, "missing.topic"), 300*time.Millisecond
	})
	l := s.link(t, "erin", "SKU-3")
	begin := time.Now()
	resp, _ := get(t, s.url(t, l))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != l.URL {
		t.Fatalf("%d Location %q, want 302 to %s", resp.StatusCode, resp.Header.Get("Location"), l.URL)
	}
	if took := time.Since(begin); took > 5*time.Second {
		t.Errorf("the redirect took %s", took)
	}
	if total, unique := s.counts(t, l.NotificationID()); total != 1 || unique != 1 {
		t.Errorf("total %d unique %d, want 1 and 1", total, unique)
	}
	if v := counter(t, s.reg, "backinstock_engagement_click_record_failures_total", "kafka"); v != 1 {
		t.Errorf("kafka record failures %v, want 1", v)
	}
}
