// Package app runs the inventory service: the stock API in front of Redis
// and the outbox relay to Kafka. It is public so the local stack can run the
// service in-process; cmd/inventory is a thin main around Run.
package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/inventory/internal/api"
	"backinstock/services/inventory/internal/relay"
	"backinstock/services/inventory/internal/stock"
	"backinstock/services/inventory/internal/store"
	"backinstock/shared/config"
	"backinstock/shared/httpapi"
	"backinstock/shared/kafka"
	"backinstock/shared/lifecycle"
	"backinstock/shared/redisconn"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// Config is the whole service configuration.
type Config struct {
	HTTPAddr string
	APIToken string
	RedisURL string
	Kafka    kafka.Config
	Regions  []string

	// RestockMinQuantity: a sold-out sku restocks when its level reaches it.
	RestockMinQuantity int64
	// OutboxShards spreads levels and the outbox over Redis Cluster slots;
	// fixed for the life of a store.
	OutboxShards int

	MaxBodyBytes   int64
	BulkMaxBytes   int64
	BulkMaxItems   int
	IdempotencyTTL time.Duration
	// RequestTimeout bounds every API request; an Idempotency-Key is held
	// by an attempt for as long, no longer.
	RequestTimeout time.Duration

	// RelayEnabled runs the outbox relay in this process. Off, the API only
	// fills the outbox (another replica, or a later start, publishes it).
	RelayEnabled      bool
	RelayBatch        int
	RelayDrainTimeout time.Duration
	RelayLeaseTTL     time.Duration
	// OutboxMaxAge: /readyz reports the outbox degraded while the oldest unpublished entry is older.
	OutboxMaxAge time.Duration

	// OnListen, when set, is called with the bound HTTP address before serving.
	OnListen func(addr string) `json:"-"`
}

// Bind registers every setting on s (env names in the README's table).
func (c *Config) Bind(s *config.Set) {
	s.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", ":8080", "HTTP listen address (API, /healthz, /readyz, /metrics)")
	s.String(&c.APIToken, "api-token", "API_TOKEN", "", "bearer token the stock API requires (required)")
	s.String(&c.RedisURL, "redis-url", "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL (redis:// or rediss://; ?addr= for a cluster)")
	c.Kafka.Bind(s)
	s.List(&c.Regions, "regions", "REGIONS", catalog.DefaultRegions, "regions stock may be set in")
	s.Int64(&c.RestockMinQuantity, "restock-min-quantity", "RESTOCK_MIN_QUANTITY", store.DefaultMinQuantity, "a sold-out sku restocks when its level reaches this")
	s.Int(&c.OutboxShards, "outbox-shards", "OUTBOX_SHARDS", store.DefaultShards, "Redis shards (cluster slots) for levels and the outbox; never change on a populated store")
	s.Int64(&c.MaxBodyBytes, "max-body-bytes", "MAX_BODY_BYTES", api.DefaultMaxBodyBytes, "largest PUT body")
	s.Int64(&c.BulkMaxBytes, "bulk-max-bytes", "BULK_MAX_BYTES", api.DefaultBulkMaxBytes, "largest bulk POST body")
	s.Int(&c.BulkMaxItems, "bulk-max-items", "BULK_MAX_ITEMS", api.DefaultBulkMaxItems, "most updates in one bulk POST")
	s.Duration(&c.IdempotencyTTL, "idempotency-ttl", "IDEMPOTENCY_TTL", store.DefaultIdempotencyTTL, "how long Idempotency-Key results are kept")
	s.Duration(&c.RequestTimeout, "request-timeout", "REQUEST_TIMEOUT", api.DefaultRequestTimeout, "longest an API request takes to answer; a write Redis did not confirm by then is a 503 (retry it with the same Idempotency-Key)")
	s.Bool(&c.RelayEnabled, "relay", "RELAY_ENABLED", true, "run the outbox relay to Kafka in this process")
	s.Int(&c.RelayBatch, "relay-batch", "RELAY_BATCH", relay.DefaultBatch, "most outbox entries published at once per shard")
	s.Duration(&c.RelayDrainTimeout, "relay-drain-timeout", "RELAY_DRAIN_TIMEOUT", relay.DefaultDrainTimeout, "how long shutdown keeps publishing the outbox")
	s.Duration(&c.RelayLeaseTTL, "relay-lease-ttl", "RELAY_LEASE_TTL", relay.DefaultLeaseTTL, "lease of a shard's relay; a crashed relay's shards are taken over after it")
	s.Duration(&c.OutboxMaxAge, "outbox-max-age", "OUTBOX_MAX_AGE", 30*time.Second, "/readyz reports the outbox as degraded while its oldest unpublished entry is older than this")
}

// Validate names every wrong setting.
func (c Config) Validate() error {
	var p config.Problems
	if c.APIToken == "" {
		p.Addf("API_TOKEN", "required")
	}
	if c.HTTPAddr == "" {
		p.Addf("HTTP_ADDR", "required")
	}
	if c.RedisURL == "" {
		p.Addf("REDIS_URL", "required")
	}
	if c.RelayEnabled {
		p.Add(c.Kafka.Validate())
	}
	if len(c.Regions) == 0 {
		p.Addf("REGIONS", "at least one region is required")
	}
	for _, r := range c.Regions {
		if !events.ValidRegion(r) {
			p.Addf("REGIONS", "%q is not a region id (%s)", r, events.RegionPattern)
		}
	}
	if c.RestockMinQuantity < 1 || c.RestockMinQuantity > events.MaxQuantity {
		p.Addf("RESTOCK_MIN_QUANTITY", "must be between 1 and %d, got %d", events.MaxQuantity, c.RestockMinQuantity)
	}
	if c.OutboxShards < 1 || c.OutboxShards > 1024 {
		p.Addf("OUTBOX_SHARDS", "must be between 1 and 1024, got %d", c.OutboxShards)
	}
	if c.MaxBodyBytes < 1024 {
		p.Addf("MAX_BODY_BYTES", "must be at least 1024, got %d", c.MaxBodyBytes)
	}
	if c.BulkMaxBytes < 1024 {
		p.Addf("BULK_MAX_BYTES", "must be at least 1024, got %d", c.BulkMaxBytes)
	}
	if c.BulkMaxItems < 1 {
		p.Addf("BULK_MAX_ITEMS", "must be at least 1, got %d", c.BulkMaxItems)
	}
	if c.IdempotencyTTL < time.Minute {
		p.Addf("IDEMPOTENCY_TTL", "must be at least 1m, got %s", c.IdempotencyTTL)
	}
	if c.RequestTimeout < 100*time.Millisecond || c.RequestTimeout > time.Minute {
		p.Addf("REQUEST_TIMEOUT", "must be between 100ms and 1m, got %s", c.RequestTimeout)
	}
	if c.RelayBatch < 1 {
		p.Addf("RELAY_BATCH", "must be at least 1, got %d", c.RelayBatch)
	}
	config.NotNegative(&p, "RELAY_DRAIN_TIMEOUT", c.RelayDrainTimeout)
	if c.RelayLeaseTTL < time.Second {
		p.Addf("RELAY_LEASE_TTL", "must be at least 1s, got %s", c.RelayLeaseTTL)
	}
	if c.OutboxMaxAge <= 0 {
		p.Addf("OUTBOX_MAX_AGE", "must be positive, got %s", c.OutboxMaxAge)
	}
	return p.Err()
}

// Run serves the API and runs the relay until ctx ends, then stops the HTTP
// server first (no new writes), flushes the outbox to Kafka for up to
// RELAY_DRAIN_TIMEOUT and closes Redis. Kafka being down does not stop it
// from starting or from accepting writes.
func Run(ctx context.Context, cfg Config, log *zap.Logger, reg *prometheus.Registry) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	rdb, err := redisconn.New(ctx, cfg.RedisURL, redisconn.Options{})
	if err != nil {
		return err
	}
	defer rdb.Close()
	st, err := store.New(rdb, store.Options{
		Shards: cfg.OutboxShards, MinQuantity: cfg.RestockMinQuantity,
		IdempotencyTTL: cfg.IdempotencyTTL,
	})
	if err != nil {
		return err
	}
	if err := st.Load(ctx); err != nil {
		return err
	}
	handler, err := api.New(st, api.Options{
		Token:        cfg.APIToken,
		Rules:        stock.Rules{Regions: cfg.Regions},
		MaxBodyBytes: cfg.MaxBodyBytes, BulkMaxBytes: cfg.BulkMaxBytes, BulkMaxItems: cfg.BulkMaxItems,
		RequestTimeout: cfg.RequestTimeout,
	}, log.Named("api"), api.NewMetrics(reg))
	if err != nil {
		return err
	}
	srv := httpapi.NewServer(cfg.HTTPAddr, log.Named("http"), reg, handler)
	srv.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	relayMetrics := relay.NewMetrics(reg)
	var rl *relay.Relay
	if cfg.RelayEnabled {
		kcfg := cfg.Kafka
		if kcfg.ClientID == "" {
			kcfg.ClientID = "inventory"
		}
		if rl, err = relay.New(st, kcfg, relay.Options{
			Batch: cfg.RelayBatch, DrainTimeout: cfg.RelayDrainTimeout,
			LeaseTTL: cfg.RelayLeaseTTL, Metrics: relayMetrics,
		}, log.Named("relay")); err != nil {
			return err
		}
	}
	srv.AddCheck("outbox", func(ctx context.Context) error {
		n, age, err := relay.Backlog(ctx, st)
		if err != nil {
			return err
		}
		if age > cfg.OutboxMaxAge {
			msg := fmt.Sprintf("outbox backlog %d entries, oldest %s (limit %s)", n, age.Round(time.Millisecond), cfg.OutboxMaxAge)
			if rl != nil && rl.LastError() != nil {
				msg += "; last relay error: " + rl.LastError().Error()
			}
			// Reported, not failed: every replica shares an outage of Kafka, and
			// taking them all out of service would refuse the very writes the
			// outbox exists to absorb. The outbox-age alert pages instead.
			return httpapi.Degraded(errors.New(msg))
		}
		return nil
	})
	if err := srv.Listen(); err != nil {
		return err
	}
	if cfg.OnListen != nil {
		cfg.OnListen(srv.Addr())
	}
	log.Info("inventory started", zap.String("addr", srv.Addr()), zap.Strings("regions", cfg.Regions),
		zap.Bool("relay", cfg.RelayEnabled), zap.Int("outbox_shards", cfg.OutboxShards))
	var parts []lifecycle.Part
	if rl != nil {
		parts = append(parts, lifecycle.Part{Name: "relay", Run: rl.Run})
	}
	parts = append(parts, lifecycle.Part{Name: "http", Run: srv.Run})
	return lifecycle.Run(ctx, log, parts...)
}
