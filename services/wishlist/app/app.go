// Package app runs the wishlist service's commands: the HTTP API (serve), a
// region's fan-out worker (fanout), the store rebuild from the changelog
// (rebuild) and the bulk import (import). It is public so the local stack
// can run them in-process, each with its own Prometheus registry.
package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/api"
	"backinstock/services/wishlist/internal/changelog"
	"backinstock/services/wishlist/internal/fanout"
	"backinstock/services/wishlist/internal/privacy"
	"backinstock/services/wishlist/internal/service"
	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/config"
	"backinstock/shared/httpapi"
	"backinstock/shared/kafka"
	"backinstock/shared/lifecycle"
	"backinstock/shared/natsconn"
	"backinstock/shared/redisconn"
	"backinstock/shared/stockview"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// Config holds every setting of every command; each command binds and
// validates the ones it uses.
type Config struct {
	Kafka        kafka.Config
	RedisURL     string
	RedisCluster bool
	Regions      []string

	// serve
	HTTPAddr       string
	APIToken       string
	MaxBodyBytes   int64
	MaxImportBytes int64
	ImportBatch    int
	RequestTimeout time.Duration
	// UnsubscribeKeys verify one-click unsubscribe links (kid:secret,...;
	// topics/unsubscribe); empty: the unsubscribe routes are not served.
	UnsubscribeKeys string
	// The edge (NATS), where the export reads and the erasure purges the
	// user's notifications; empty NATSURL: those two routes answer 503.
	NATSURL, NATSCreds, NATSToken, NATSCAFile string
	PrivacyTimeout                            time.Duration

	// fanout
	Region        string
	MetricsAddr   string
	DeliveryMode  string
	PerUnit       int
	MinStock      int64
	BatchInterval time.Duration
	PageSize      int
	InFlightPages int
	Parallelism   int
	SegmentMin    int
	CheckpointTTL time.Duration
	URLTemplate   string
	Linger        time.Duration
	// GroupInstanceID makes this worker a static member of its group
	// (shared/kafka GroupOptions.InstanceID).
	GroupInstanceID string

	// replay: the window [ReplayFrom, ReplayTo) of restocks fanned out again
	ReplayFrom string
	ReplayTo   string

	// import
	ImportFile string

	// OnListen, when set, is told the bound HTTP address (serve) or metrics
	// address (fanout) once it listens; tests and the local stack use it
	// with port 0.
	OnListen func(addr string)
}

// importFileBatch is the import command's batch: a file import has the
// whole pipeline to itself, unlike an import request in a serving API.
const importFileBatch = 5000

// defaults are the settings a Config starts from: the flag defaults, and
// what setDefaults fills into the fields an in-process caller leaves zero.
// The API's limits and the fan-out's tuning are the defaults of the
// packages that use them.
func defaults() Config {
	lim, tune := api.Defaults(), fanout.Defaults()
	return Config{
		RedisURL:       "redis://127.0.0.1:6379/0",
		Regions:        catalog.DefaultRegions,
		HTTPAddr:       ":8081",
		MaxBodyBytes:   lim.MaxBodyBytes,
		MaxImportBytes: lim.MaxImportBytes,
		ImportBatch:    lim.ImportBatch,
		RequestTimeout: lim.RequestTimeout,
		PrivacyTimeout: lim.PrivacyTimeout,
		MetricsAddr:    ":9181",
		DeliveryMode:   events.DeliveryAll,
		PerUnit:        2,
		MinStock:       1,
		BatchInterval:  30 * time.Second,
		PageSize:       tune.PageSize,
		InFlightPages:  tune.InFlightPages,
		Parallelism:    tune.Parallelism,
		SegmentMin:     tune.SegmentMin,
		CheckpointTTL:  15 * 24 * time.Hour,
		URLTemplate:    "https://shop.example.com/p/{sku}",
		Linger:         5 * time.Millisecond,
	}
}

// setDefaults fills the tuning fields an in-process caller left zero. From
// the command line every field holds its flag value already, and the
// Validate methods refuse a zero or negative one there, naming its variable.
func (c *Config) setDefaults() {
	d := defaults()
	config.Default(&c.MaxBodyBytes, d.MaxBodyBytes)
	config.Default(&c.MaxImportBytes, d.MaxImportBytes)
	config.Default(&c.MinStock, d.MinStock)
	config.Default(&c.ImportBatch, d.ImportBatch)
	config.Default(&c.RequestTimeout, d.RequestTimeout)
	config.Default(&c.PrivacyTimeout, d.PrivacyTimeout)
	config.Default(&c.PerUnit, d.PerUnit)
	config.Default(&c.PageSize, d.PageSize)
	config.Default(&c.InFlightPages, d.InFlightPages)
	config.Default(&c.Parallelism, d.Parallelism)
	config.Default(&c.SegmentMin, d.SegmentMin)
	config.Default(&c.BatchInterval, d.BatchInterval)
	config.Default(&c.CheckpointTTL, d.CheckpointTTL)
	config.Default(&c.DeliveryMode, d.DeliveryMode)
	config.Default(&c.URLTemplate, d.URLTemplate)
}

// Bind registers the settings every command shares: Kafka, Redis, regions
// (the log level is the command runner's, shared/cli).
func (c *Config) Bind(s *config.Set) {
	d := defaults()
	c.Kafka.Bind(s)
	s.String(&c.RedisURL, "redis-url", "REDIS_URL", d.RedisURL, "Redis URL (redis:// or rediss://; cluster: more nodes as ?addr=host:port)")
	s.Bool(&c.RedisCluster, "redis-cluster", "REDIS_CLUSTER", false, "use the Redis Cluster client even for one seed address")
	s.List(&c.Regions, "regions", "REGIONS", d.Regions, "regions served")
}

// BindServe registers the API settings.
func (c *Config) BindServe(s *config.Set) {
	d := defaults()
	s.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", d.HTTPAddr, "API listen address")
	s.String(&c.APIToken, "api-token", "API_TOKEN", "", "bearer token the API requires (required)")
	s.Int64(&c.MaxBodyBytes, "max-body-bytes", "MAX_BODY_BYTES", d.MaxBodyBytes, "largest JSON request body")
	s.Int64(&c.MaxImportBytes, "max-import-bytes", "MAX_IMPORT_BYTES", d.MaxImportBytes, "largest bulk-import body (streamed)")
	s.Int(&c.ImportBatch, "import-batch", "IMPORT_BATCH", d.ImportBatch, "entries written per pipeline during an import")
	s.Duration(&c.RequestTimeout, "request-timeout", "REQUEST_TIMEOUT", d.RequestTimeout, "longest an API request (imports excepted) takes to answer; a store that has not answered by then is a 503")
	s.String(&c.NATSURL, "nats-url", "NATS_URL", "", "NATS URL of the edge, whose streams the export reads and the erasure purges (empty: GET /v1/users/{user_id}/export and DELETE /v1/users/{user_id} answer 503)")
	s.String(&c.NATSCreds, "nats-creds", "NATS_CREDS", "", "NATS .creds file (user JWT and seed)")
	s.String(&c.NATSToken, "nats-token", "NATS_TOKEN", "", "NATS token")
	s.String(&c.NATSCAFile, "nats-tls-ca-file", "NATS_TLS_CA_FILE", "", "PEM CA bundle for the NATS servers' TLS certificate (empty: system roots)")
	s.Duration(&c.PrivacyTimeout, "privacy-timeout", "PRIVACY_TIMEOUT", d.PrivacyTimeout, "longest an export or erasure takes (they scan the Redis keyspace and the edge streams)")
	s.String(&c.UnsubscribeKeys, "unsubscribe-keys", "UNSUBSCRIBE_KEYS", "", "keys of the one-click unsubscribe links, kid:secret,... (secrets of 32+ bytes; the gateway signs with the first, all verify); empty: no unsubscribe routes")
}

// BindFanout registers the fan-out settings.
func (c *Config) BindFanout(s *config.Set) {
	d := defaults()
	s.String(&c.Region, "region", "REGION", "", "region whose restocks this worker fans out (group fanout.<region>) (required)")
	s.String(&c.MetricsAddr, "metrics-addr", "METRICS_ADDR", d.MetricsAddr, "listen address for /metrics, /healthz, /readyz (--metrics-addr \"\": none)")
	s.String(&c.GroupInstanceID, "group-instance-id", "KAFKA_GROUP_INSTANCE_ID", "", "static group member id, unique per worker and kept across its restarts, e.g. the pod name (empty: dynamic member)")
	c.bindFanoutPolicy(s, d)
}

// bindFanoutPolicy registers how a restock is fanned out: the worker's and
// the replay's settings.
func (c *Config) bindFanoutPolicy(s *config.Set, d Config) {
	s.String(&c.DeliveryMode, "delivery-mode", "DELIVERY_MODE", d.DeliveryMode, "default policy: all, or stock_aware (a restock may override it)")
	s.Int(&c.PerUnit, "per-unit", "DELIVERY_PER_UNIT", d.PerUnit, "stock_aware: wishlisters notified per unit in stock, per wave")
	s.Int64(&c.MinStock, "min-stock", "DELIVERY_MIN_STOCK", d.MinStock, "stock_aware: stock a further wave needs")
	s.Duration(&c.BatchInterval, "batch-interval", "DELIVERY_INTERVAL", d.BatchInterval, "stock_aware: time between waves")
	s.Int(&c.PageSize, "page-size", "FANOUT_PAGE_SIZE", d.PageSize, "wishlisters read and produced per page (one checkpoint per page)")
	s.Int(&c.InFlightPages, "in-flight-pages", "FANOUT_IN_FLIGHT_PAGES", d.InFlightPages, "pages awaiting acks at once (bounds memory and duplicates after a crash)")
	s.Int(&c.Parallelism, "parallelism", "FANOUT_PARALLELISM", d.Parallelism, "segments this process pages at once, of its own restocks and of other processes' (1: one cursor per restock; memory and duplicates after a crash grow with it)")
	s.Int(&c.SegmentMin, "segment-min", "FANOUT_SEGMENT_MIN", d.SegmentMin, "fewest wishlisters per segment: smaller restocks and waves are paged as one")
	s.Duration(&c.CheckpointTTL, "checkpoint-ttl", "FANOUT_CHECKPOINT_TTL", d.CheckpointTTL, "how long fan-out checkpoints and done markers are kept (longer than the restock topic's retention)")
	s.String(&c.URLTemplate, "url-template", "PRODUCT_URL_TEMPLATE", d.URLTemplate, "product link for restocks without a product URL; {sku} is replaced")
	s.Duration(&c.Linger, "linger", "KAFKA_PRODUCER_LINGER", d.Linger, "how long the producer waits to fill a batch")
}

// BindReplay registers the fan-out replay's settings: the fan-out's policy
// and the window.
func (c *Config) BindReplay(s *config.Set) {
	d := defaults()
	s.String(&c.Region, "region", "REGION", "", "region whose restocks are fanned out again (required)")
	c.bindFanoutPolicy(s, d)
	s.String(&c.ReplayFrom, "from", "", "", `replay the restocks timestamped from this RFC 3339 time (e.g. 2026-11-24T08:00:00Z), or "beginning" (required)`)
	s.String(&c.ReplayTo, "to", "", "", "replay the restocks timestamped before this RFC 3339 time, after --from (required)")
}

// BindImport registers the import settings.
func (c *Config) BindImport(s *config.Set) {
	s.String(&c.ImportFile, "file", "IMPORT_FILE", "", "NDJSON file of {\"user_id\",\"sku\",\"region\",\"channels\"} lines; - for stdin (required)")
	s.Int(&c.ImportBatch, "import-batch", "IMPORT_BATCH", importFileBatch, "entries written per pipeline")
}

// Validate checks the shared settings.
func (c Config) Validate() error {
	var p config.Problems
	p.Add(c.Kafka.Validate())
	if c.RedisURL == "" {
		p.Addf("REDIS_URL", "required")
	}
	if len(c.Regions) == 0 {
		p.Addf("REGIONS", "at least one region is required")
	}
	for _, r := range c.Regions {
		if !events.ValidRegion(r) {
			p.Addf("REGIONS", "%q is not a region id (%s)", r, events.RegionPattern)
		}
	}
	return p.Err()
}

// ValidateServe checks the API settings too.
func (c Config) ValidateServe() error {
	var p config.Problems
	p.Add(c.Validate())
	if c.APIToken == "" {
		p.Addf("API_TOKEN", "required")
	}
	if c.MaxBodyBytes <= 0 {
		p.Addf("MAX_BODY_BYTES", "must be positive")
	}
	if c.MaxImportBytes <= 0 {
		p.Addf("MAX_IMPORT_BYTES", "must be positive")
	}
	if c.ImportBatch <= 0 {
		p.Addf("IMPORT_BATCH", "must be positive")
	}
	if c.RequestTimeout < 100*time.Millisecond || c.RequestTimeout > time.Minute {
		p.Addf("REQUEST_TIMEOUT", "must be between 100ms and 1m, got %s", c.RequestTimeout)
	}
	// The server cuts a response after its 60 s write timeout.
	if c.PrivacyTimeout < time.Second || c.PrivacyTimeout > 55*time.Second {
		p.Addf("PRIVACY_TIMEOUT", "must be between 1s and 55s, got %s", c.PrivacyTimeout)
	}
	if c.NATSURL == "" && (c.NATSCreds != "" || c.NATSToken != "" || c.NATSCAFile != "") {
		p.Addf("NATS_URL", "required when NATS credentials are set")
	}
	if c.UnsubscribeKeys != "" {
		if _, err := unsubscribe.ParseKeys(c.UnsubscribeKeys); err != nil {
			p.Addf("UNSUBSCRIBE_KEYS", "%v", err)
		}
	}
	return p.Err()
}

// ValidateFanout checks the fan-out settings too.
func (c Config) ValidateFanout() error {
	var p config.Problems
	p.Add(c.Validate())
	if c.Region == "" {
		p.Addf("REGION", "required (--region)")
	} else if !slices.Contains(c.Regions, c.Region) {
		p.Addf("REGION", "%q is not one of REGIONS %v", c.Region, c.Regions)
	}
	if c.GroupInstanceID != "" {
		if err := kafka.CheckInstanceID(c.GroupInstanceID); err != nil {
			p.Addf("KAFKA_GROUP_INSTANCE_ID", "%v", err)
		}
	}
	if c.DeliveryMode != events.DeliveryAll && c.DeliveryMode != events.DeliveryStockAware {
		p.Addf("DELIVERY_MODE", "must be %s or %s, got %q", events.DeliveryAll, events.DeliveryStockAware, c.DeliveryMode)
	}
	if c.PerUnit < 1 {
		p.Addf("DELIVERY_PER_UNIT", "must be at least 1")
	}
	if c.MinStock < 1 {
		p.Addf("DELIVERY_MIN_STOCK", "must be at least 1")
	}
	if c.BatchInterval <= 0 {
		p.Addf("DELIVERY_INTERVAL", "must be positive")
	}
	if c.PageSize < 1 || c.PageSize > 100_000 {
		p.Addf("FANOUT_PAGE_SIZE", "must be between 1 and 100000")
	}
	if c.InFlightPages < 1 {
		p.Addf("FANOUT_IN_FLIGHT_PAGES", "must be at least 1")
	}
	if c.Parallelism < 1 || c.Parallelism > 64 {
		p.Addf("FANOUT_PARALLELISM", "must be between 1 and 64")
	}
	if c.SegmentMin < 1 {
		p.Addf("FANOUT_SEGMENT_MIN", "must be at least 1")
	}
	if c.CheckpointTTL <= 0 {
		p.Addf("FANOUT_CHECKPOINT_TTL", "must be positive")
	}
	n := wishes.MessageFor(events.RestockEvent{EventID: events.RestockEventID("probe", "probe", 1), SKU: "probe", Region: "probe", Episode: 1}, c.URLTemplate).
		Notification("probe", events.ChannelApp, nil, time.Now())
	if err := n.Validate(); err != nil {
		p.Addf("PRODUCT_URL_TEMPLATE", "%q does not make a valid link: %v", c.URLTemplate, err)
	}
	return p.Err()
}

// ValidateReplay checks the replay settings too.
func (c Config) ValidateReplay() error {
	var p config.Problems
	p.Add(c.ValidateFanout())
	_, _, err := kafka.ParseWindow(c.ReplayFrom, c.ReplayTo)
	p.Add(err)
	return p.Err()
}

// ValidateImport checks the import settings too.
func (c Config) ValidateImport() error {
	var p config.Problems
	p.Add(c.Validate())
	if c.ImportFile == "" {
		p.Addf("IMPORT_FILE", "required (--file)")
	}
	if c.ImportBatch <= 0 {
		p.Addf("IMPORT_BATCH", "must be positive")
	}
	return p.Err()
}

func (c Config) redis(ctx context.Context) (redis.UniversalClient, error) {
	return redisconn.New(ctx, c.RedisURL, redisconn.Options{Cluster: c.RedisCluster})
}

// RunServe serves the API until ctx ends.
func RunServe(ctx context.Context, cfg Config, log *zap.Logger, reg *prometheus.Registry) (err error) {
	cfg.setDefaults()
	if err := cfg.ValidateServe(); err != nil {
		return err
	}
	rdb, err := cfg.redis(ctx)
	if err != nil {
		return err
	}
	defer closeInto(&err, "close redis", rdb.Close)
	prod, err := kafka.NewProducer(cfg.Kafka, kafka.ProducerOptions{}, log)
	if err != nil {
		return err
	}
	defer closeInto(&err, "close producer", prod.Close)
	var keys unsubscribe.Keys
	if cfg.UnsubscribeKeys != "" {
		if keys, err = unsubscribe.ParseKeys(cfg.UnsubscribeKeys); err != nil {
			return fmt.Errorf("UNSUBSCRIBE_KEYS: %w", err)
		}
	}
	finder := &privacy.Finder{Redis: rdb, Regions: cfg.Regions}
	var nc *nats.Conn
	if cfg.NATSURL != "" {
		if nc, finder.JS, err = natsconn.Connect(cfg.NATSURL, natsconn.Options{Name: "wishlist", CredsFile: cfg.NATSCreds,
			Token: cfg.NATSToken, CAFile: cfg.NATSCAFile}, log); err != nil {
			return err
		}
		defer closeInto(&err, "drain nats", func() error { return natsconn.Drain(nc, 10*time.Second) })
	}
	svc := &service.Service{Store: store.New(rdb), Producer: prod, Topic: catalog.WishlistChanges, Regions: cfg.Regions}
	h, err := api.Handler(api.Options{Token: cfg.APIToken, Regions: cfg.Regions, MaxBodyBytes: cfg.MaxBodyBytes,
		MaxImportBytes: cfg.MaxImportBytes, ImportBatch: cfg.ImportBatch, RequestTimeout: cfg.RequestTimeout,
		PrivacyTimeout: cfg.PrivacyTimeout, Privacy: finder, Unsubscribe: keys}, svc, api.NewMetrics(registerer(reg)), log)
	if err != nil {
		return err
	}
	srv := httpapi.NewServer(cfg.HTTPAddr, log, gatherer(reg), h)
	srv.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, prod.Client()) })
	if nc != nil {
		srv.AddCheck("nats", func(ctx context.Context) error { return nc.FlushWithContext(ctx) })
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	if cfg.OnListen != nil {
		cfg.OnListen(srv.Addr())
	}
	return lifecycle.Run(ctx, log, lifecycle.Part{Name: "http", Run: srv.Run})
}

// fanoutDeps are what a fan-out runs on, live (RunFanout) or replayed
// (RunReplay): Redis, the producer, and the region's stock view.
type fanoutDeps struct {
	rdb  redis.UniversalClient
	prod *kafka.Producer
	view *stockview.View
}

// openFanout opens a fan-out's dependencies; closeAll closes them, the
// last opened first. The caller runs the stock view.
func openFanout(ctx context.Context, cfg Config, log *zap.Logger) (d fanoutDeps, closeAll func() error, err error) {
	var closers []func() error
	closeAll = func() error {
		var errs []error
		for i := len(closers) - 1; i >= 0; i-- {
			errs = append(errs, closers[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, closeAll())
		}
	}()
	if d.rdb, err = cfg.redis(ctx); err != nil {
		return d, nil, err
	}
	closers = append(closers, func() error { return wrapClose("redis", d.rdb.Close()) })
	if d.prod, err = kafka.NewProducer(cfg.Kafka, kafka.ProducerOptions{Linger: cfg.Linger}, log); err != nil {
		return d, nil, err
	}
	closers = append(closers, func() error { return wrapClose("producer", d.prod.Close()) })
	vcl, err := kafka.NewClient(cfg.Kafka)
	if err != nil {
		return d, nil, err
	}
	closers = append(closers, func() error {
		if err := vcl.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
			return wrapClose("stock view client", err)
		}
		return nil
	})
	if d.view, err = stockview.New(vcl, stockview.Config{Region: cfg.Region}, log.Named("stockview")); err != nil {
		return d, nil, err
	}
	return d, closeAll, nil
}

func wrapClose(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// newFanout is the region's fan-out on d with cfg's policy; scope keeps a
// replay's checkpoints apart from the live ones ("" for the live group).
func newFanout(cfg Config, d fanoutDeps, m *fanout.Metrics, scope string, log *zap.Logger) (*fanout.Fanout, error) {
	return fanout.New(fanout.Config{
		Region:          cfg.Region,
		Policy:          wishes.Policy{Mode: cfg.DeliveryMode, PerUnit: cfg.PerUnit, MinStock: cfg.MinStock, Interval: cfg.BatchInterval},
		PageSize:        cfg.PageSize,
		InFlightPages:   cfg.InFlightPages,
		Parallelism:     cfg.Parallelism,
		SegmentMin:      cfg.SegmentMin,
		CheckpointTTL:   cfg.CheckpointTTL,
		URLTemplate:     cfg.URLTemplate,
		CheckpointScope: scope,
	}, store.New(d.rdb), d.prod, d.view, m, log)
}

// RunFanout runs the fan-out group of cfg.Region until ctx ends.
func RunFanout(ctx context.Context, cfg Config, log *zap.Logger, reg *prometheus.Registry) (err error) {
	cfg.setDefaults()
	if err := cfg.ValidateFanout(); err != nil {
		return err
	}
	log = log.With(zap.String("region", cfg.Region))
	d, closeAll, err := openFanout(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeInto(&err, "close", closeAll)
	rdb, view := d.rdb, d.view
	r := registerer(reg)
	fo, err := newFanout(cfg, d, fanout.NewMetrics(r, cfg.Region), "", log)
	if err != nil {
		return err
	}
	group, err := kafka.NewGroup(cfg.Kafka, kafka.GroupOptions{
		Group:      "fanout." + cfg.Region,
		InstanceID: cfg.GroupInstanceID,
		Topics:     []string{catalog.Restock},
		MaxBatch:   16,
		Metrics:    kafka.NewMetrics(r),
	}, fo, log)
	if err != nil {
		return err
	}
	parts := []lifecycle.Part{}
	if cfg.MetricsAddr != "" {
		srv := httpapi.NewServer(cfg.MetricsAddr, log, gatherer(reg), nil)
		srv.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
		srv.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, group.Client()) })
		if err := srv.Listen(); err != nil {
			return errors.Join(err, group.Run(canceled(ctx)))
		}
		if cfg.OnListen != nil {
			cfg.OnListen(srv.Addr())
		}
		parts = append(parts, lifecycle.Part{Name: "metrics", Run: srv.Run})
	}
	parts = append(parts,
		lifecycle.Part{Name: "stockview", Run: view.Run},
		lifecycle.Part{Name: "fanout-group", Run: group.Run},
		// Segments of restocks other workers of the region own.
		lifecycle.Part{Name: "fanout-helper", Run: fo.Help})
	return lifecycle.Run(ctx, log, parts...)
}

// registerer avoids a typed-nil interface when no registry is given.
func registerer(reg *prometheus.Registry) prometheus.Registerer {
	if reg == nil {
		return nil
	}
	return reg
}

// gatherer avoids a typed-nil interface when no registry is given.
func gatherer(reg *prometheus.Registry) prometheus.Gatherer {
	if reg == nil {
		return nil
	}
	return reg
}

// canceled is an ended context: running a group with it just closes it.
func canceled(ctx context.Context) context.Context {
	c, cancel := context.WithCancel(ctx)
	cancel()
	return c
}

// RebuildResult counts what a rebuild read.
type RebuildResult struct {
	Records int64 `json:"records"`
	Bad     int64 `json:"bad"`
}

// RunRebuild replays wishlist.changes.v1 from the beginning into the store.
// Run it on an empty store (or one that only lacks data): it applies the log
// on top of what is there.
func RunRebuild(ctx context.Context, cfg Config, log *zap.Logger) (res RebuildResult, err error) {
	if err := cfg.Validate(); err != nil {
		return res, err
	}
	rdb, err := cfg.redis(ctx)
	if err != nil {
		return res, err
	}
	defer closeInto(&err, "close redis", rdb.Close)
	cl, err := kafka.NewClient(cfg.Kafka)
	if err != nil {
		return res, err
	}
	defer closeInto(&err, "close kafka client", cl.Close)
	svc := &service.Service{Store: store.New(rdb), Topic: catalog.WishlistChanges, Regions: cfg.Regions}
	start := time.Now()
	res.Records, err = changelog.Replay(ctx, cl, catalog.WishlistChanges, 5000, svc.Apply, func(m *sarama.ConsumerMessage, err error) {
		res.Bad++
		log.Warn("changelog record skipped", zap.Int32("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
	})
	if err != nil {
		return res, fmt.Errorf("rebuild from %s: %w", catalog.WishlistChanges, err)
	}
	log.Info("rebuild finished", zap.Int64("records", res.Records), zap.Int64("bad", res.Bad), zap.Duration("took", time.Since(start)))
	return res, nil
}

// ImportResult counts what an import did.
type ImportResult = service.ImportResult

// RunImport loads cfg.ImportFile (NDJSON; "-" is stdin) with the same code
// as POST /v1/wishlists:import.
func RunImport(ctx context.Context, cfg Config, log *zap.Logger) (res ImportResult, err error) {
	if cfg.ImportBatch == 0 {
		cfg.ImportBatch = importFileBatch
	}
	cfg.setDefaults()
	if err := cfg.ValidateImport(); err != nil {
		return res, err
	}
	in := os.Stdin
	if cfg.ImportFile != "-" {
		f, err := os.Open(cfg.ImportFile)
		if err != nil {
			return res, fmt.Errorf("IMPORT_FILE: %w", err)
		}
		defer f.Close()
		in = f
	}
	rdb, err := cfg.redis(ctx)
	if err != nil {
		return res, err
	}
	defer closeInto(&err, "close redis", rdb.Close)
	prod, err := kafka.NewProducer(cfg.Kafka, kafka.ProducerOptions{}, log)
	if err != nil {
		return res, err
	}
	defer closeInto(&err, "close producer", prod.Close)
	svc := &service.Service{Store: store.New(rdb), Producer: prod, Topic: catalog.WishlistChanges, Regions: cfg.Regions}
	start := time.Now()
	res, err = svc.Import(ctx, in, cfg.ImportBatch)
	if err != nil {
		return res, fmt.Errorf("import %s: %w", cfg.ImportFile, err)
	}
	log.Info("import finished", zap.Int64("imported", res.Imported), zap.Int64("rejected", res.Rejected), zap.Duration("took", time.Since(start)))
	return res, nil
}

func closeInto(err *error, what string, close func() error) {
	if cerr := close(); cerr != nil {
		*err = errors.Join(*err, fmt.Errorf("%s: %w", what, cerr))
	}
}
