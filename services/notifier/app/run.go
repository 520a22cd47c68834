package app

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/notifier/edgeauth"
	"backinstock/services/notifier/internal/edge"
	"backinstock/services/notifier/internal/pipeline"
	"backinstock/services/notifier/internal/ratelimit"
	"backinstock/services/notifier/internal/store"
	"backinstock/shared/httpapi"
	"backinstock/shared/kafka"
	"backinstock/shared/lifecycle"
	"backinstock/shared/natsconn"
	"backinstock/shared/redisconn"
	"backinstock/shared/stockview"
	"backinstock/topics/events"
)

// Run is `notifier run`: it ensures the region's edge stream, then consumes
// the region's notify topics until ctx ends, and serves health, metrics and
// edge tokens over HTTP.
func Run(ctx context.Context, cfg Config, log *zap.Logger, reg *prometheus.Registry) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	log = log.With(zap.String("region", cfg.Region))
	limits, _ := ratelimit.Parse(cfg.RateLimits, events.ValidChannel)

	rdb, err := redisconn.New(ctx, cfg.RedisURL, redisconn.Options{})
	if err != nil {
		return err
	}
	defer rdb.Close()

	nc, js, err := natsconn.Connect(cfg.NATSURL, natsconn.Options{Name: "notifier-" + cfg.Region, CredsFile: cfg.NATSCreds, Token: cfg.NATSToken}, log)
	if err != nil {
		return err
	}
	defer func() {
		// Every batch has waited for its acks by now; the drain only ends
		// the ack subscription, so a few seconds is ample.
		if err := natsconn.Drain(nc, 10*time.Second); err != nil {
			log.Warn("drain nats", zap.Error(err))
		}
	}()
	pub, err := edge.NewPublisher(nc, cfg.MaxPending, cfg.PublishTimeout)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = edge.EnsureStream(sctx, js, cfg.Region, edge.StreamOptions{
		Duplicates: cfg.DuplicateWindow, MaxAge: cfg.StreamMaxAge, MaxBytes: cfg.StreamMaxBytes, Replicas: cfg.StreamReplicas,
	})
	cancel()
	if err != nil {
		return err
	}

	metrics := pipeline.NewMetrics(reg, cfg.Region)
	var stock pipeline.StockLevels
	var parts []lifecycle.Part
	waitStock := func(context.Context) {}
	if cfg.StaleDrop {
		cl, err := kafka.NewClient(cfg.Kafka)
		if err != nil {
			return err
		}
		defer cl.Close()
		view, err := stockview.New(cl, stockview.Config{Region: cfg.Region, CatchUpTimeout: cfg.StockReadyTimeout}, log)
		if err != nil {
			return err
		}
		stock = view
		parts = append(parts, lifecycle.Part{Name: "stock-view", Run: view.Run})
		// The consumer part waits for the view (started before it) to catch up.
		waitStock = func(ctx context.Context) {
			err := view.CatchUp(ctx)
			switch {
			case err == nil:
				log.Info("stock view caught up", zap.Int("skus", view.Len()))
			case ctx.Err() == nil:
				log.Warn("stock view not caught up; starting anyway", zap.Error(err))
			}
		}
	}

	proc := pipeline.New(pipeline.Options{
		Region: cfg.Region, Store: store.New(rdb, cfg.Region, cfg.MarkerTTL), Pub: pub,
		Limits: ratelimit.NewSet(limits), Stock: stock, Now: cfg.Now, Metrics: metrics, Log: log,
		Crash: crashHook(cfg.CrashAt, cfg.CrashAfterN, pub, log),
	})
	group, err := kafka.NewGroup(cfg.Kafka, kafka.GroupOptions{
		Group: cfg.Group, InstanceID: cfg.GroupInstanceID, Topics: cfg.Topics(), MaxBatch: cfg.MaxBatch, Linger: cfg.Linger,
		DeadLetterTopic: cfg.DeadLetterTopic, Metrics: kafka.NewMetrics(reg),
		RetryBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
	}, proc, log)
	if err != nil {
		return err
	}

	handler, err := tokenHandler(cfg, httpapi.NewRouteMetrics(reg, "notifier"), log)
	if err != nil {
		return err
	}
	srv := httpapi.NewServer(cfg.HTTPAddr, log, reg, handler)
	srv.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	srv.AddCheck("nats", func(context.Context) error {
		if nc.Status() != nats.CONNECTED {
			return fmt.Errorf("nats %s", nc.Status())
		}
		return nil
	})
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, group.Client()) })
	if err := srv.Listen(); err != nil {
		return err
	}
	if cfg.OnListen != nil {
		cfg.OnListen(srv.Addr())
	}
	log.Info("notifier starting", zap.String("group", cfg.Group), zap.Strings("topics", cfg.Topics()), zap.String("http", srv.Addr()))

	all := append([]lifecycle.Part{{Name: "http", Run: srv.Run}}, parts...)
	all = append(all,
		lifecycle.Part{Name: "releaser", Run: func(ctx context.Context) error { return proc.RunReleaser(ctx, cfg.ReleaseInterval) }},
		lifecycle.Part{Name: "consumer", Run: func(ctx context.Context) error {
			waitStock(ctx)
			return group.Run(ctx)
		}},
	)
	return lifecycle.Run(ctx, log, all...)
}

// crashHook is the test-only SIGKILL at a protocol step.
func crashHook(point string, afterN int, pub *edge.Publisher, log *zap.Logger) func(string) {
	if point == "" {
		return nil
	}
	var mu sync.Mutex
	hits := 0
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		hits++
		if hits < afterN {
			return
		}
		if p == pipeline.AfterPublish {
			// Make sure the server has the messages: the point is "published,
			// not yet acknowledged to us".
			_ = pub.Flush()
		}
		log.Warn("NOTIFIER_CRASH_AT reached; killing this process", zap.String("point", p), zap.Int("hit", hits))
		_ = log.Sync()
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}

type tokenRequest struct {
	UserID string `json:"user_id"`
}

type tokenResponse struct {
	JWT       string    `json:"jwt"`
	WSURL     string    `json:"ws_url,omitempty"`
	Subject   string    `json:"subject"`
	ExpiresAt time.Time `json:"expires_at"`
}

// tokenHandler serves POST /v1/edge/token. Without an account seed the
// route is public and answers 503: there is nothing to protect, and a
// client learns why it gets no token.
func tokenHandler(cfg Config, m *httpapi.RouteMetrics, log *zap.Logger) (http.Handler, error) {
	rt := httpapi.NewRouter(httpapi.RouterOptions{Token: cfg.APIToken, Metrics: m, Log: log})
	if cfg.EdgeAccountSeedFile == "" {
		rt.Public("POST /v1/edge/token", "edge_token", func(http.ResponseWriter, *http.Request) error {
			return httpapi.Errorf(http.StatusServiceUnavailable, "edge_auth_disabled", "this notifier has no EDGE_ACCOUNT_SEED_FILE")
		})
		return rt, nil
	}
	seed, err := os.ReadFile(cfg.EdgeAccountSeedFile)
	if err != nil {
		return nil, fmt.Errorf("EDGE_ACCOUNT_SEED_FILE: %w", err)
	}
	issuer, err := edgeauth.NewIssuer(seed)
	if err != nil {
		return nil, fmt.Errorf("EDGE_ACCOUNT_SEED_FILE: %w", err)
	}
	rt.Handle("POST /v1/edge/token", "edge_token", func(w http.ResponseWriter, r *http.Request) error {
		var req tokenRequest
		if err := httpapi.Decode(w, r, 4<<10, &req); err != nil {
			return err
		}
		if !events.ValidID(req.UserID) {
			return httpapi.Invalid("user_id: must match %s", events.IDPattern)
		}
		tok, err := issuer.IssueUser(req.UserID, cfg.EdgeTokenTTL, time.Now())
		if err != nil {
			return fmt.Errorf("issue edge token: %w", err)
		}
		httpapi.WriteJSON(w, http.StatusOK, tokenResponse{JWT: tok.JWT, WSURL: cfg.EdgeWSURL, Subject: tok.Subject, ExpiresAt: tok.Expires.UTC()})
		return nil
	})
	return rt, nil
}
