package httpapi_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"backinstock/shared/httpapi"
)

var errRule = errors.New("rule broken")

func newRouter(t *testing.T) (*httpapi.Router, *httpapi.RouteMetrics) {
	t.Helper()
	m := httpapi.NewRouteMetrics(prometheus.NewRegistry(), "demo")
	rt := httpapi.NewRouter(httpapi.RouterOptions{Token: "s3cret", Metrics: m, Classify: func(err error) *httpapi.Error {
		if errors.Is(err, errRule) {
			return httpapi.Invalid("%v", err)
		}
		return nil
	}})
	rt.Handle("GET /private", "private", func(w http.ResponseWriter, _ *http.Request) error {
		httpapi.WriteJSON(w, http.StatusOK, map[string]string{"ok": "private"})
		return nil
	})
	rt.Public("GET /public", "public", func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	rt.Handle("GET /api-error", "api_error", func(http.ResponseWriter, *http.Request) error {
		return httpapi.Errorf(http.StatusConflict, "in_flight", "busy")
	})
	rt.Handle("GET /rule", "rule", func(http.ResponseWriter, *http.Request) error { return errRule })
	rt.Handle("GET /lost", "lost", func(http.ResponseWriter, *http.Request) error { return errors.New("redis: connection refused") })
	return rt, m
}

func TestRouterAuthenticatesAllButPublicRoutes(t *testing.T) {
	rt, m := newRouter(t)
	tests := []struct {
		name, path, auth string
		status           int
		bodyHas          string
	}{
		{name: "private without token", path: "/private", status: http.StatusUnauthorized, bodyHas: `"unauthorized"`},
		{name: "private with wrong token", path: "/private", auth: "Bearer nope", status: http.StatusUnauthorized, bodyHas: "invalid token"},
		{name: "private with token", path: "/private", auth: "Bearer s3cret", status: http.StatusOK, bodyHas: `"private"`},
		{name: "public without token", path: "/public", status: http.StatusNoContent},
		{name: "unknown route without token", path: "/nope", status: http.StatusUnauthorized},
		{name: "unknown route with token", path: "/nope", auth: "Bearer s3cret", status: http.StatusNotFound, bodyHas: "no route GET /nope"},
		{name: "API error kept", path: "/api-error", auth: "Bearer s3cret", status: http.StatusConflict, bodyHas: `"in_flight"`},
		{name: "classified error", path: "/rule", auth: "Bearer s3cret", status: http.StatusUnprocessableEntity, bodyHas: "rule broken"},
		{name: "unclassified error is an opaque 500", path: "/lost", auth: "Bearer s3cret", status: http.StatusInternalServerError, bodyHas: `"internal error"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			rt.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.bodyHas) {
				t.Fatalf("status %d body %s, want %d with %q", rec.Code, rec.Body.String(), tt.status, tt.bodyHas)
			}
			if strings.Contains(rec.Body.String(), "redis") {
				t.Fatalf("internal error leaked: %s", rec.Body.String())
			}
		})
	}
	// Rejected requests never reach a route, so only authenticated ones count.
	for _, c := range []struct {
		route, code string
		want        float64
	}{{"private", "200", 1}, {"private", "401", 0}, {"public", "204", 1}, {"api_error", "409", 1}, {"rule", "422", 1}, {"lost", "500", 1}} {
		if got := testutil.ToFloat64(m.Requests.WithLabelValues(c.route, c.code)); got != c.want {
			t.Errorf("requests{route=%s,code=%s} = %v, want %v", c.route, c.code, got, c.want)
		}
	}
	if n := testutil.CollectAndCount(m.Duration); n != 5 {
		t.Errorf("duration series %d, want one per route that ran (5)", n)
	}
}

func TestRouteMetricsNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := httpapi.NewRouteMetrics(reg, "wishlist")
	m.Requests.WithLabelValues("put_entry", "200").Inc()
	m.Duration.WithLabelValues("put_entry").Observe(0.01)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName())
	}
	want := "backinstock_wishlist_http_request_duration_seconds backinstock_wishlist_http_requests_total"
	if strings.Join(names, " ") != want {
		t.Fatalf("metric names %v, want %s", names, want)
	}
}
