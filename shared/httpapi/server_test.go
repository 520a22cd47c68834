package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/shared/httpapi"
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
