package httpapi

// This file: the process's HTTP listener with the endpoints every process
// answers, /healthz (alive), /readyz (able to serve: its checks pass) and
// /metrics (Prometheus), shut down gracefully.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Check reports whether one dependency is ready; a non-nil error says why
// not. An error wrapped by Degraded is reported without failing readiness.
// It must return once ctx ends: /readyz waits for every check.
type Check func(ctx context.Context) error

// CheckTimeout is each readiness check's own deadline. The checks run
// concurrently, so /readyz answers within about this long however many
// there are, and a slow one (Kafka under load) reports its own timeout
// instead of spending a shared deadline that made a healthy Redis report
// "context deadline exceeded" after it.
const CheckTimeout = 2 * time.Second

type degraded struct{ err error }

func (d degraded) Error() string { return d.err.Error() }
func (d degraded) Unwrap() error { return d.err }

// Degraded marks a check's finding as worth reporting on /readyz but not a
// reason to take the instance out of service: taking it out would not help
// (every replica shares the cause) and would stop work it can still do.
func Degraded(err error) error { return degraded{err} }

// Server is an http.Server plus health, readiness and metrics.
type Server struct {
	addr     string
	log      *zap.Logger
	mux      *http.ServeMux
	gatherer prometheus.Gatherer

	mu     sync.Mutex
	checks map[string]Check
	ln     net.Listener
	srv    *http.Server
}

// NewServer builds a server on addr (host:port; port 0 picks a free one). app, when
// not nil, serves every path other than the built-in ones.
func NewServer(addr string, log *zap.Logger, gatherer prometheus.Gatherer, app http.Handler) *Server {
	s := &Server{addr: addr, log: log, mux: http.NewServeMux(), gatherer: gatherer, checks: map[string]Check{}}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	if gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	// Every other path goes to app, but a wrong method on a built-in path
	// gets the same JSON 405 the routers give.
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case methodNotAllowed(s.mux, w, r):
		case app != nil:
			app.ServeHTTP(w, r)
		default:
			WriteError(w, Errorf(http.StatusNotFound, "not_found", "no route %s %s", r.Method, r.URL.Path))
		}
	})
	return s
}

// AddCheck registers a readiness check under name.
func (s *Server) AddCheck(name string, c Check) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks[name] = c
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	checks := make(map[string]Check, len(s.checks))
	for k, v := range s.checks {
		checks[k] = v
	}
	s.mu.Unlock()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for name, c := range checks {
		go func() {
			ctx, cancel := context.WithTimeout(r.Context(), CheckTimeout)
			defer cancel()
			results <- result{name, c(ctx)}
		}()
	}
	status, body := http.StatusOK, map[string]string{}
	for range checks {
		res := <-results
		var d degraded
		if errors.As(res.err, &d) {
			body[res.name] = "degraded: " + res.err.Error()
		} else if res.err != nil {
			status, body[res.name] = http.StatusServiceUnavailable, res.err.Error()
		} else {
			body[res.name] = "ok"
		}
	}
	WriteJSON(w, status, body)
}

// Listen binds the address, so callers learn the port before Run.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	return nil
}

// Addr is the bound address (after Listen).
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return s.addr
	}
	return s.ln.Addr().String()
}

// Run serves until ctx ends, then gives in-flight requests up to 10 s.
func (s *Server) Run(ctx context.Context) error {
	if s.ln == nil {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	s.srv = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("http listening", zap.String("addr", s.Addr()))
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown http: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}
