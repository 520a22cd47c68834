package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"backinstock/shared/httpapi"
	"backinstock/shared/testenv"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHealthReadinessMetricsAndShutdown(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	app := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "app") })
	s := httpapi.NewServer("127.0.0.1:0", zap.NewNop(), reg, app)
	ready := errors.New("kafka: unreachable")
	s.AddCheck("kafka", func(context.Context) error { return ready })
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	base := "http://" + s.Addr()

	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "unreachable") {
		t.Fatalf("readyz %d %s", code, body)
	}
	ready = httpapi.Degraded(errors.New("outbox backlog 12 entries"))
	if code, body := get(t, base+"/readyz"); code != 200 || !strings.Contains(body, "degraded: outbox backlog 12") {
		t.Fatalf("degraded readyz %d %s", code, body)
	}
	ready = nil
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Fatalf("readyz after recovery %d", code)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "backinstock_test_total 1") {
		t.Fatalf("metrics missing counter:\n%s", body)
	}
	if _, body := get(t, base+"/anything"); body != "app" {
		t.Fatalf("app handler not reached: %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Fatal("server still answering after shutdown")
	}
}

// TestReadyzChecksRunConcurrentlyEachUnderItsOwnDeadline: two checks that
// block past the deadline, a fast one and a real Redis: the fast one and
// Redis report ok whatever order the checks run in, each slow one reports
// its own timeout, and the answer comes in about one deadline, not two.
func TestReadyzChecksRunConcurrentlyEachUnderItsOwnDeadline(t *testing.T) {
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = rdb.Close() })

	s := httpapi.NewServer("127.0.0.1:0", zap.NewNop(), nil, nil)
	slow := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	s.AddCheck("kafka", slow)
	s.AddCheck("nats", slow)
	s.AddCheck("fast", func(ctx context.Context) error { return ctx.Err() })
	s.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	serve(t, s)

	start := time.Now()
	code, body := get(t, "http://"+s.Addr()+"/readyz")
	took := time.Since(start)
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	want := map[string]string{
		"kafka": context.DeadlineExceeded.Error(), "nats": context.DeadlineExceeded.Error(),
		"fast": "ok", "redis": "ok",
	}
	if code != http.StatusServiceUnavailable || !reflect.DeepEqual(got, want) {
		t.Fatalf("readyz %d %v; want 503 %v", code, got, want)
	}
	if took < httpapi.CheckTimeout || took > httpapi.CheckTimeout*3/2 {
		t.Fatalf("readyz took %s; want about one CheckTimeout (%s), not one per slow check", took, httpapi.CheckTimeout)
	}
}

// serve runs s until the test ends, and fails the test if it stops badly.
func serve(t *testing.T, s *httpapi.Server) {
	t.Helper()
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}
