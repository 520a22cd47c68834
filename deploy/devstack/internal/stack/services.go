package stack

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
)

// service is one in-process service: its name, its entry point and the
// address it ends up listening on.
type service struct {
	name string
	run  func(ctx context.Context, log *zap.Logger, reg *prometheus.Registry, onListen func(string)) error

	mu   sync.Mutex
	addr string
}

func (s *service) setAddr(a string) { s.mu.Lock(); s.addr = a; s.mu.Unlock() }

// URL is the service's base URL once it listens.
func (s *service) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addr == "" {
		return ""
	}
	return "http://" + s.addr
}

func (s *service) part(log *zap.Logger) lifecycle.Part {
	return lifecycle.Part{Name: s.name, Run: func(ctx context.Context) error {
		return s.run(ctx, log.Named(s.name), prometheus.NewRegistry(), s.setAddr)
	}}
}

// bind fills a service's config the way its binary would (defaults, then the
// environment), so the stack runs the services exactly as deployed.
func bind(name string, binders ...func(*config.Set)) error {
	s := config.NewSet(name)
	for _, b := range binders {
		b(s)
	}
	if err := s.Parse(nil); err != nil {
		return fmt.Errorf("%s config: %w", name, err)
	}
	return nil
}

// waitReady polls each service's /readyz until all answer 200.
func waitReady(ctx context.Context, svcs []*service, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for _, s := range svcs {
		for {
			if u := s.URL(); u != "" {
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u+"/readyz", nil)
				if resp, err := client.Do(req); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						break
					}
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s not ready within %s", s.name, timeout)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
