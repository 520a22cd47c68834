package app

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/notifier/edgeauth"
	"backinstock/services/notifier/internal/edge"
	"backinstock/services/notifier/internal/edgeguard"
	"backinstock/services/notifier/internal/pipeline"
	"backinstock/services/notifier/internal/ratelimit"
	"backinstock/services/notifier/internal/store"
	"backinstock/shared/httpapi"
	"backinstock/shared/kafka"
	"backinstock/shared/lifecycle"
	"backinstock/shared/natsconn"
	"backinstock/shared/optoutcheck"
	"backinstock/shared/pause"
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

	nc, js, err := natsconn.Connect(cfg.NATSURL, natsconn.Options{Name: "notifier-" + cfg.Region, CredsFile: cfg.NATSCreds, Token: cfg.NATSToken, CAFile: cfg.NATSCAFile}, log)
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
	pub, drain, err := newPublisher(cfg, nc, log)
	defer drain()
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = edge.EnsureStreams(sctx, js, cfg.Region, edge.StreamOptions{
		Duplicates: cfg.DuplicateWindow, MaxAge: cfg.StreamMaxAge, MaxBytes: cfg.StreamMaxBytes, Replicas: cfg.StreamReplicas,
	})
	cancel()
	if err != nil {
		return err
	}

	metrics := pipeline.NewMetrics(reg, cfg.Region)
	pauseStore := pause.NewStore(rdb)
	pauses := pause.NewWatcher(pauseStore, pause.WatcherOptions{
		Region: cfg.Region, Channels: cfg.Channels, Metrics: pause.NewMetrics(reg, "backinstock_notifier_", cfg.Region), Log: log.Named("pause"),
	})
	// A replica started while its region is paused must not publish before
	// its first poll.
	if err := pauses.Refresh(ctx); err != nil {
		return err
	}
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
		Limits: ratelimit.NewSet(limits), Stock: stock, Now: cfg.Now, Metrics: metrics, Log: log, Pause: pauses,
		// The wishlist writes the opt-out records to this same Redis
		// (every deployment gives both one REDIS_URL).
		OptOuts: optoutcheck.New(rdb),
		Crash:   crashHook(cfg.CrashAt, cfg.CrashAfterN, pub, log),
	})
	group, err := kafka.NewGroup(cfg.Kafka, kafka.GroupOptions{
		Group: cfg.Group, InstanceID: cfg.GroupInstanceID, Topics: cfg.Topics(), MaxBatch: cfg.MaxBatch, Linger: cfg.Linger,
		DeadLetterTopic: cfg.DeadLetterTopic, Metrics: kafka.NewMetrics(reg),
		RetryBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
	}, proc, log)
	if err != nil {
		return err
	}

	// The edge routes: each answers 503, public, where this notifier lacks
	// its keys (there is nothing to protect, and a client learns why).
	routes := httpapi.NewRouter(httpapi.RouterOptions{Token: cfg.APIToken, Metrics: httpapi.NewRouteMetrics(reg, "notifier"), Log: log})
	if cfg.EdgeAccountSeedFile == "" {
		disabledRoute(routes, "POST /v1/edge/token", "edge_token", "edge_auth_disabled", "this notifier has no EDGE_ACCOUNT_SEED_FILE")
	} else {
		issuer, err := edgeIssuer(cfg.EdgeAccountSeedFile)
		if err != nil {
			return err
		}
		tokenRoute(routes, cfg, issuer)
		if cfg.EdgeSystemCreds != "" { // Validate: only with the seed
			sysnc, err := connectSystem(cfg, log)
			if err != nil {
				return err
			}
			defer sysnc.Close() // it publishes nothing that needs a drain
			gm := edgeguard.NewMetrics(reg)
			guard, err := edgeguard.New(sysnc, edgeguard.Options{
				Account: issuer.Account(), MaxConnsPerUser: cfg.EdgeMaxConnsPerUser, Metrics: gm, Log: log.Named("edge-guard"),
			})
			if err != nil {
				return err
			}
			parts = append(parts, lifecycle.Part{Name: "edge-guard", Run: guard.Run})
			if cfg.EdgeOperatorSeedFile != "" {
				revoker, err := newRevoker(ctx, cfg, js, sysnc, issuer, gm)
				if err != nil {
					return err
				}
				revocationRoute(routes, revoker, log)
			}
		}
	}
	adminOff := ""
	if cfg.APIToken == "" {
		adminOff = "this notifier has no API_TOKEN"
	}
	pause.Routes(routes, pause.RouteOptions{Region: cfg.Region, Store: pauseStore, Watcher: pauses, Disabled: adminOff, Log: log.Named("pause")})
	if cfg.EdgeOperatorSeedFile == "" {
		disabledRoute(routes, "POST /v1/edge/revocations", "edge_revocation", "edge_revocation_disabled", "this notifier has no EDGE_SYSTEM_CREDS and EDGE_OPERATOR_SEED_FILE")
	}
	srv := httpapi.NewServer(cfg.HTTPAddr, log, reg, routes)
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

	all := append([]lifecycle.Part{{Name: "http", Run: srv.Run}, {Name: "pause-watcher", Run: pauses.Run}}, parts...)
	all = append(all,
		lifecycle.Part{Name: "releaser", Run: func(ctx context.Context) error { return proc.RunReleaser(ctx, cfg.ReleaseInterval) }},
		lifecycle.Part{Name: "consumer", Run: func(ctx context.Context) error {
			waitStock(ctx)
			return group.Run(ctx)
		}},
	)
	return lifecycle.Run(ctx, log, all...)
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

type revocationResponse struct {
	UserID        string    `json:"user_id"`
	UserKey       string    `json:"user_key"`
	RevokedBefore time.Time `json:"revoked_before"`
}

// edgeIssuer reads EDGE_ACCOUNT_SEED_FILE.
func edgeIssuer(path string) (*edgeauth.Issuer, error) {
	seed, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("EDGE_ACCOUNT_SEED_FILE: %w", err)
	}
	issuer, err := edgeauth.NewIssuer(seed)
	if err != nil {
		return nil, fmt.Errorf("EDGE_ACCOUNT_SEED_FILE: %w", err)
	}
	return issuer, nil
}

// newRevoker reads EDGE_OPERATOR_SEED_FILE and ensures the revocation lease
// bucket.
func newRevoker(ctx context.Context, cfg Config, js jetstream.JetStream, sysnc *nats.Conn, issuer *edgeauth.Issuer, m *edgeguard.Metrics) (*edgeguard.Revoker, error) {
	seed, err := os.ReadFile(cfg.EdgeOperatorSeedFile)
	if err != nil {
		return nil, fmt.Errorf("EDGE_OPERATOR_SEED_FILE: %w", err)
	}
	signer, err := nkeys.FromSeed(bytes.TrimSpace(seed))
	if err != nil {
		return nil, fmt.Errorf("EDGE_OPERATOR_SEED_FILE: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	locks, err := edgeguard.EnsureLockBucket(ctx, js, cfg.StreamReplicas)
	if err != nil {
		return nil, err
	}
	return edgeguard.NewRevoker(sysnc, edgeguard.RevokerOptions{
		Issuer: issuer, Signer: signer, TokenTTL: cfg.EdgeTokenTTL, Locks: locks, Metrics: m,
	})
}

// connectSystem connects the system-account user of the edge guard and the
// revocations: a connection of its own, since the service user may not
// read $SYS subjects.
func connectSystem(cfg Config, log *zap.Logger) (*nats.Conn, error) {
	nc, _, err := natsconn.Connect(cfg.NATSURL, natsconn.Options{Name: "notifier-" + cfg.Region + "-edge-guard", CredsFile: cfg.EdgeSystemCreds, CAFile: cfg.NATSCAFile}, log.Named("edge-guard"))
	if err != nil {
		return nil, fmt.Errorf("EDGE_SYSTEM_CREDS: %w", err)
	}
	return nc, nil
}

// disabledRoute answers 503 with code.
func disabledRoute(rt *httpapi.Router, pattern, route, code, msg string) {
	rt.Public(pattern, route, func(http.ResponseWriter, *http.Request) error {
		return httpapi.Errorf(http.StatusServiceUnavailable, code, "%s", msg)
	})
}

// tokenRoute serves POST /v1/edge/token.
func tokenRoute(rt *httpapi.Router, cfg Config, issuer *edgeauth.Issuer) {
	rt.Handle("POST /v1/edge/token", "edge_token", func(w http.ResponseWriter, r *http.Request) error {
		userID, err := decodeUserID(w, r)
		if err != nil {
			return err
		}
		tok, err := issuer.IssueUser(userID, cfg.EdgeTokenTTL, time.Now())
		if err != nil {
			return fmt.Errorf("issue edge token: %w", err)
		}
		httpapi.WriteJSON(w, http.StatusOK, tokenResponse{JWT: tok.JWT, WSURL: cfg.EdgeWSURL, Subject: tok.Subject, ExpiresAt: tok.Expires.UTC()})
		return nil
	})
}

// revocationRoute serves POST /v1/edge/revocations.
func revocationRoute(rt *httpapi.Router, revoker *edgeguard.Revoker, log *zap.Logger) {
	rt.Handle("POST /v1/edge/revocations", "edge_revocation", func(w http.ResponseWriter, r *http.Request) error {
		userID, err := decodeUserID(w, r)
		if err != nil {
			return err
		}
		rev, err := revoker.Revoke(r.Context(), userID)
		if errors.Is(err, edgeguard.ErrUnavailable) {
			log.Warn("edge revocation failed", zap.String("user_id", userID), zap.Error(err))
			return httpapi.Errorf(http.StatusServiceUnavailable, "edge_unavailable", "the edge did not take the revocation; retry (revoking twice is harmless)")
		}
		if err != nil {
			return fmt.Errorf("revoke %s: %w", userID, err)
		}
		log.Info("edge tokens revoked", zap.String("user_id", userID), zap.Time("before", rev.Before))
		httpapi.WriteJSON(w, http.StatusOK, revocationResponse{UserID: rev.UserID, UserKey: rev.UserKey, RevokedBefore: rev.Before})
		return nil
	})
}

func decodeUserID(w http.ResponseWriter, r *http.Request) (string, error) {
	var req tokenRequest
	if err := httpapi.Decode(w, r, 4<<10, &req); err != nil {
		return "", err
	}
	if !events.ValidID(req.UserID) {
		return "", httpapi.Invalid("user_id: must match %s", events.IDPattern)
	}
	return req.UserID, nil
}

// newPublisher publishes over nc and cfg.EdgeConnections-1 more connections
// of the same user; drain ends those once every batch has waited for its
// acks (as nc's drain does).
func newPublisher(cfg Config, nc *nats.Conn, log *zap.Logger) (*edge.Publisher, func(), error) {
	var more []*nats.Conn
	drain := func() {
		for _, c := range more {
			if err := natsconn.Drain(c, 10*time.Second); err != nil {
				log.Warn("drain nats", zap.Error(err))
			}
		}
	}
	pub, err := edge.NewPublisher(nc, cfg.MaxPending, cfg.PublishTimeout)
	if err != nil {
		return nil, drain, err
	}
	for i := 1; i < cfg.EdgeConnections; i++ {
		c, _, err := natsconn.Connect(cfg.NATSURL, natsconn.Options{Name: fmt.Sprintf("notifier-%s-%d", cfg.Region, i), CredsFile: cfg.NATSCreds, Token: cfg.NATSToken, CAFile: cfg.NATSCAFile}, log)
		if err != nil {
			return nil, drain, err
		}
		more = append(more, c)
		if err := pub.AddConn(c); err != nil {
			return nil, drain, err
		}
	}
	return pub, drain, nil
}
