package pause_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"backinstock/shared/httpapi"
	"backinstock/shared/pause"
	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

var seq atomic.Int64

func region() string { return fmt.Sprintf("p%d-%d", seq.Add(1), os.Getpid()%1000) }

func client(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	rdb, err := redisconn.New(context.Background(), url, redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// run starts w's poll loop until the test ends.
func run(t *testing.T, w *pause.Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
}

func TestNilGateIsNeverPaused(t *testing.T) {
	var g *pause.Gate
	select {
	case <-g.Resumed():
	default:
		t.Fatal("a nil gate's Resumed is not closed")
	}
	if g.IsPaused() || g.Paused() != nil {
		t.Fatal("a nil gate is paused")
	}
}

// TestTwoReplicasApplyWithinASecond: a pause written through one
// replica's store reaches another replica's watcher within a second, its
// gate channels fire and its gauge follows; pausing twice keeps the first
// entry; resuming one channel of a paused region leaves the others.
func TestTwoReplicasApplyWithinASecond(t *testing.T) {
	t.Parallel()
	reg := region()
	rdb := client(t, env.Redis(t).URL())
	st := pause.NewStore(rdb)
	metrics := pause.NewMetrics(prometheus.NewRegistry(), "test_", reg)
	other := pause.NewWatcher(pause.NewStore(client(t, env.Redis(t).URL())), pause.WatcherOptions{Region: reg, Channels: []string{"sms", "email"}, Metrics: metrics})
	if err := other.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	run(t, other)
	sms := other.Gate("sms")
	if sms.IsPaused() {
		t.Fatal("paused before any pause")
	}
	paused := sms.Paused()

	ctx := context.Background()
	if err := st.Pause(ctx, reg, []string{"sms"}, "ops-alice", "provider outage"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case <-paused:
	case <-time.After(time.Second):
		t.Fatal("the other replica did not apply the pause within 1s")
	}
	t.Logf("applied after %s", time.Since(start))
	if other.Gate("email").IsPaused() || !sms.IsPaused() {
		t.Fatal("wrong channels paused")
	}
	if got := testutil.ToFloat64(metrics.Paused.WithLabelValues("sms")); got != 1 {
		t.Fatalf("paused gauge %v, want 1", got)
	}
	first, err := st.Load(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.Paused) != 1 || first.Paused[0].Operator != "ops-alice" || first.Paused[0].Reason != "provider outage" || first.Paused[0].Since.IsZero() {
		t.Fatalf("state %+v", first)
	}
	// Pausing again (all channels this time) keeps the sms entry as it was.
	if err := st.Pause(ctx, reg, []string{"app", "web", "email", "sms"}, "ops-bob", "freeze"); err != nil {
		t.Fatal(err)
	}
	all, err := st.Load(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Paused) != 4 || all.Paused[3] != first.Paused[0] || all.Paused[0].Channel != "app" || all.Paused[0].Operator != "ops-bob" {
		t.Fatalf("after the second pause: %+v", all)
	}

	resumed := sms.Resumed()
	if err := st.Resume(ctx, reg, []string{"sms"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-resumed:
	case <-time.After(time.Second):
		t.Fatal("the other replica did not apply the resume within 1s")
	}
	testenv.Eventually(t, time.Second, func() bool { return testutil.ToFloat64(metrics.Paused.WithLabelValues("sms")) == 0 }, "gauge back to 0")
	if !other.Gate("email").IsPaused() {
		t.Fatal("resuming sms resumed email too")
	}
	if other.Gate("webhook") != nil {
		t.Fatal("a gate for a name that is not a channel")
	}
}

// TestUnreadableStateKeepsTheLastOne: while Redis does not answer, the
// watcher keeps what it last read (neither pausing nor resuming), counts
// the failures, and applies changes again once Redis is back.
func TestUnreadableStateKeepsTheLastOne(t *testing.T) {
	t.Parallel()
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if r.Embedded() {
		t.Skip("needs redis-server (SIGSTOP)")
	}
	reg := region()
	st := pause.NewStore(client(t, r.URL()))
	metrics := pause.NewMetrics(nil, "test_", reg)
	w := pause.NewWatcher(pause.NewStore(client(t, r.URL())), pause.WatcherOptions{Region: reg, Metrics: metrics, PollInterval: 50 * time.Millisecond})
	ctx := context.Background()
	if err := st.Pause(ctx, reg, []string{"email"}, "", ""); err != nil {
		t.Fatal(err)
	}
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	run(t, w)
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(metrics.ReadErrors) >= 2 }, "read errors counted")
	if !w.Gate("email").IsPaused() {
		t.Fatal("an unreadable state resumed the channel")
	}
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := st.Resume(ctx, reg, []string{"email"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.Gate("email").Resumed():
	case <-time.After(5 * time.Second):
		t.Fatal("not resumed after Redis came back")
	}
}

// TestJunkValueCountsAsPaused: a field the services did not write (a
// hand-made HSET) still pauses its channel; a field that is no channel is
// ignored.
func TestJunkValueCountsAsPaused(t *testing.T) {
	t.Parallel()
	reg := region()
	rdb := client(t, env.Redis(t).URL())
	if err := rdb.HSet(context.Background(), pause.Key(reg), "web", "yes", "fax", "{}").Err(); err != nil {
		t.Fatal(err)
	}
	st, err := pause.NewStore(rdb).Load(context.Background(), reg)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Paused) != 1 || st.Paused[0].Channel != "web" || !st.Has("web") {
		t.Fatalf("state %+v", st)
	}
}

type answer struct {
	status int
	body   map[string]any
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a answer
	a.status = resp.StatusCode
	_ = json.NewDecoder(resp.Body).Decode(&a.body)
	return a
}

func errorMessage(a answer) string {
	e, _ := a.body["error"].(map[string]any)
	m, _ := e["message"].(string)
	return m
}

// TestRoutes: the token is required; a bad body is a 400 naming its
// field and changes nothing; pause, state and resume answer the state.
func TestRoutes(t *testing.T) {
	t.Parallel()
	reg := region()
	rdb := client(t, env.Redis(t).URL())
	st := pause.NewStore(rdb)
	w := pause.NewWatcher(st, pause.WatcherOptions{Region: reg})
	rt := httpapi.NewRouter(httpapi.RouterOptions{Token: "secret"})
	pause.Routes(rt, pause.RouteOptions{Region: reg, Store: st, Watcher: w})
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)

	bad := []struct {
		name, body, field string
	}{
		{"no region", `{"channel":"sms"}`, "region: required"},
		{"bad region", `{"region":"US_EAST"}`, "region: "},
		{"other region", `{"region":"eu-west-1"}`, "region: this service serves"},
		{"bad channel", `{"region":"` + reg + `","channel":"fax"}`, "channel: "},
		{"long operator", `{"region":"` + reg + `","operator":"` + strings.Repeat("o", 129) + `"}`, "operator: "},
		{"long reason", `{"region":"` + reg + `","reason":"` + strings.Repeat("r", 501) + `"}`, "reason: "},
		{"unknown field", `{"region":"` + reg + `","channels":["sms"]}`, "channels"},
		{"not json", `region=x`, ""},
	}
	for _, path := range []string{pause.Path, pause.PathResume} {
		for _, b := range bad {
			a := call(t, srv, "POST", path, "secret", b.body)
			if a.status != http.StatusBadRequest || !strings.Contains(errorMessage(a), b.field) {
				t.Errorf("%s %s: %d %v, want 400 naming %q", path, b.name, a.status, a.body, b.field)
			}
		}
	}
	for _, tok := range []string{"", "wrong"} {
		for _, r := range [][2]string{{"POST", pause.Path}, {"POST", pause.PathResume}, {"GET", pause.Path}} {
			if a := call(t, srv, r[0], r[1], tok, `{"region":"`+reg+`"}`); a.status != http.StatusUnauthorized {
				t.Errorf("%s %s with token %q: %d, want 401", r[0], r[1], tok, a.status)
			}
		}
	}
	if s, _ := st.Load(context.Background(), reg); len(s.Paused) != 0 {
		t.Fatalf("refused requests changed the state: %+v", s)
	}

	a := call(t, srv, "POST", pause.Path, "secret", `{"region":"`+reg+`","channel":"sms","operator":"ops","reason":"outage"}`)
	paused, _ := a.body["paused"].([]any)
	if a.status != http.StatusOK || a.body["region"] != reg || len(paused) != 1 || paused[0].(map[string]any)["channel"] != "sms" {
		t.Fatalf("pause: %d %v", a.status, a.body)
	}
	if !w.Gate("sms").IsPaused() {
		t.Fatal("the replica that took the request has not applied it")
	}
	a = call(t, srv, "GET", pause.Path, "secret", "")
	if paused, _ = a.body["paused"].([]any); a.status != http.StatusOK || len(paused) != 1 || paused[0].(map[string]any)["operator"] != "ops" {
		t.Fatalf("state: %d %v", a.status, a.body)
	}
	a = call(t, srv, "POST", pause.PathResume, "secret", `{"region":"`+reg+`"}`)
	if paused, _ = a.body["paused"].([]any); a.status != http.StatusOK || len(paused) != 0 || w.Gate("sms").IsPaused() {
		t.Fatalf("resume: %d %v", a.status, a.body)
	}
}

// TestDisabledRoutes: without a token the routes answer a public 503
// saying why.
func TestDisabledRoutes(t *testing.T) {
	rt := httpapi.NewRouter(httpapi.RouterOptions{})
	pause.Routes(rt, pause.RouteOptions{Region: "us-east-1", Disabled: "no API_TOKEN"})
	srv := httptest.NewServer(rt)
	t.Cleanup(srv.Close)
	a := call(t, srv, "POST", pause.Path, "", `{"region":"us-east-1"}`)
	if e, _ := a.body["error"].(map[string]any); a.status != http.StatusServiceUnavailable || e["code"] != "admin_disabled" {
		t.Fatalf("%d %v", a.status, a.body)
	}
}
