package httpapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// RouteMetrics count an API's requests by route and status code and time
// them by route. The names carry the service
// (backinstock_<service>_http_requests_total{route,code},
// backinstock_<service>_http_request_duration_seconds{route}) because the
// dashboards in deploy/grafana and the checks in deploy/check read them so.
type RouteMetrics struct {
	Requests *prometheus.CounterVec
	Duration *prometheus.HistogramVec
}

// NewRouteMetrics registers service's API metrics on reg (nil: unregistered).
func NewRouteMetrics(reg prometheus.Registerer, service string) *RouteMetrics {
	m := &RouteMetrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_" + service + "_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "backinstock_" + service + "_http_request_duration_seconds",
			Help: "HTTP request duration by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route"}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration)
	}
	return m
}

// HandlerFunc is a route's handler: it writes its answer, or returns the
// error the router writes as the error body.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// RouterOptions configure a Router.
type RouterOptions struct {
	// Token is the bearer token every route but the public ones requires.
	Token string
	// Metrics, when set, count and time every route.
	Metrics *RouteMetrics
	// Log receives the errors that become 5xx answers; nil: none.
	Log *zap.Logger
	// Classify turns a handler's error that is not an *Error into one (a
	// rule violation into a 422, a lost store into a 503); when it is nil or
	// returns nil the answer is a 500 that does not leak the error.
	Classify func(error) *Error
}

// Router is an API's mux, so every service applies authentication and
// instrumentation the same way: a route needs the token unless it is added
// with Public, and the unknown-route 404 and the wrong-method 405 need it
// too, so an unauthenticated caller learns nothing about which paths exist.
type Router struct {
	mux *http.ServeMux
	o   RouterOptions
}

// NewRouter returns a router with no routes yet.
func NewRouter(o RouterOptions) *Router {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	rt := &Router{mux: http.NewServeMux(), o: o}
	rt.mux.Handle("/", BearerAuth(o.Token, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !methodNotAllowed(rt.mux, w, r) {
			WriteError(w, Errorf(http.StatusNotFound, "not_found", "no route %s %s", r.Method, r.URL.Path))
		}
	})))
	return rt
}

// Handle adds an authenticated route; route names it in metrics and logs.
func (rt *Router) Handle(pattern, route string, h HandlerFunc) {
	rt.mux.Handle(pattern, BearerAuth(rt.o.Token, rt.instrument(route, h)))
}

// Public adds a route that answers without the token.
func (rt *Router) Public(pattern, route string, h HandlerFunc) {
	rt.mux.Handle(pattern, rt.instrument(route, h))
}

func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) { rt.mux.ServeHTTP(w, r) }

// Bounded returns h with its request's context ending after d, so the
// store and log calls it makes give up in time (shared/redisconn puts a
// context's deadline on the socket) and the caller gets an answer, a 503
// through the service's Classify, instead of waiting on a stalled
// dependency.
func Bounded(d time.Duration, h HandlerFunc) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		return h(w, r.WithContext(ctx))
	}
}

// statusWriter remembers the status for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (rt *Router) instrument(route string, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		if err := h(sw, r); err != nil {
			WriteError(sw, rt.answer(route, r, err))
		}
		if m := rt.o.Metrics; m != nil {
			m.Requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
			m.Duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}
	})
}

// answer is the *Error written for err; one that is not already an *Error
// and ends as a 5xx is logged, since the caller is told nothing of it.
func (rt *Router) answer(route string, r *http.Request, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if rt.o.Classify != nil {
		e = rt.o.Classify(err)
	}
	if e == nil || e.Status >= http.StatusInternalServerError {
		rt.o.Log.Error("request failed", zap.String("route", route), zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	}
	if e == nil {
		return err // WriteError makes it the opaque 500
	}
	return e
}
