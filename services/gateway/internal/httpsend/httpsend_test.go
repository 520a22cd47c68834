package httpsend_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"backinstock/services/gateway/internal/httpsend"
	"backinstock/services/gateway/internal/retry"
)

func TestClassifyAnswers(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		status     int
		retryAfter string
		body       string
		permanent  bool
		ok         bool
		after      time.Duration
	}{
		{status: 200, ok: true},
		{status: 201, ok: true},
		{status: 204, ok: true},
		{status: 400, body: `{"code":21211,"message":"The 'To' number is not valid"}`, permanent: true},
		{status: 401, permanent: true},
		{status: 404, permanent: true},
		{status: 410, permanent: true},
		{status: 408},
		{status: 429, retryAfter: "3", after: 3 * time.Second},
		{status: 429, retryAfter: now.Add(90 * time.Second).Format(http.TimeFormat), after: 90 * time.Second},
		{status: 429, retryAfter: now.Add(-time.Hour).Format(http.TimeFormat)}, // past: no wish
		{status: 503, retryAfter: "soon"}, // malformed: ignored
		{status: 500},
		{status: 502, retryAfter: "0"},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.retryAfter != "" {
			h.Set("Retry-After", c.retryAfter)
		}
		err := httpsend.Classify("prov", httpsend.Response{Status: c.status, Header: h, Body: []byte(c.body)}, now)
		if c.ok {
			if err != nil {
				t.Errorf("%d: %v, want nil", c.status, err)
			}
			continue
		}
		permanent, code := retry.Classify(err)
		if permanent != c.permanent || code != "prov_"+strconv.Itoa(c.status) {
			t.Errorf("%d: permanent=%v code=%q, want %v prov_%d", c.status, permanent, code, c.permanent, c.status)
		}
		if got := retry.RetryAfter(err); got != c.after {
			t.Errorf("%d Retry-After %q: %s, want %s", c.status, c.retryAfter, got, c.after)
		}
		if c.body != "" && !strings.Contains(err.Error(), "21211") {
			t.Errorf("%d: error %q does not carry the provider's reason", c.status, err)
		}
		if !httpsend.IsStatus(err, "prov", c.status) {
			t.Errorf("%d: IsStatus false", c.status)
		}
	}
}

func TestDoReadsAndBoundsTheAnswer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(httpsend.IdempotencyKeyHeader) != "n-1" {
			http.Error(w, "no key", http.StatusBadRequest)
			return
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(strings.Repeat("x", 3<<20)))
	}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/send?secret=s3cr3t", nil)
	req.Header.Set(httpsend.IdempotencyKeyHeader, "n-1")
	r, err := httpsend.Do(context.Background(), srv.Client(), req)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != 429 || len(r.Body) != 1<<20 {
		t.Fatalf("status %d, body %d bytes; want 429 and the 1 MiB bound", r.Status, len(r.Body))
	}
	err = httpsend.Classify("prov", r, time.Now())
	if len(err.Error()) > 400 {
		t.Errorf("error message not shortened: %d bytes", len(err.Error()))
	}
	if retry.RetryAfter(err) != time.Second {
		t.Errorf("Retry-After lost: %v", retry.RetryAfter(err))
	}
}

func TestDoConnectionFailureIsTransient(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/send?token=s3cr3t", nil)
	_, err = httpsend.Do(context.Background(), &http.Client{Timeout: 2 * time.Second}, req)
	permanent, code := retry.Classify(err)
	if err == nil || permanent || code != "connection" {
		t.Fatalf("err %v (permanent=%v code=%q), want transient connection", err, permanent, code)
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error leaks the query: %v", err)
	}
}
