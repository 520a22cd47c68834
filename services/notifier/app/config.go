// Package app runs the notifier's subcommands (run, replay) from a Config.
// It is public so the local stack can run one notifier per region
// in-process with its own Prometheus registry.
package app

import (
	"fmt"
	"slices"
	"time"

	"backinstock/services/notifier/internal/pipeline"
	"backinstock/services/notifier/internal/ratelimit"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// Config is the configuration of `notifier run`.
type Config struct {
	Kafka    kafka.Config
	RedisURL string
	NATSURL  string
	// NATSCreds is a .creds file (user JWT + seed) for the edge; NATSToken a token.
	NATSCreds string
	NATSToken string
	Region    string
	Channels  []string
	// Group defaults to notifier.<region>.
	Group    string
	HTTPAddr string
	APIToken string

	// RateLimits is "channel=rate[:burst],..." per second for this deployment.
	RateLimits string

	MarkerTTL       time.Duration
	DuplicateWindow time.Duration
	StreamMaxAge    time.Duration
	StreamMaxBytes  int64
	StreamReplicas  int

	MaxBatch        int
	Linger          time.Duration
	PublishTimeout  time.Duration
	MaxPending      int
	ReleaseInterval time.Duration
	DeadLetterTopic string

	// StaleDrop reads inventory.stock.v1 and skips notifications whose sku
	// sold out again; StockReadyTimeout bounds the initial catch-up.
	StaleDrop         bool
	StockReadyTimeout time.Duration

	// EdgeAccountSeedFile enables POST /v1/edge/token: the app account seed
	// (edgeauth) that signs browser JWTs. EdgeWSURL is told to clients.
	EdgeAccountSeedFile string
	EdgeWSURL           string
	EdgeTokenTTL        time.Duration

	// CrashAt and CrashAfterN are a TEST-ONLY hook: at the CrashAfterN-th
	// time the protocol reaches step CrashAt (after-reserve, after-publish,
	// after-puback, after-mark) the process SIGKILLs itself. Off when empty.
	CrashAt     string
	CrashAfterN int

	// OnListen, when set, receives the bound HTTP address.
	OnListen func(addr string)
	// Now, when set, replaces the clock (quiet-hours tests).
	Now func() time.Time
}

// Bind registers every setting on s.
func (c *Config) Bind(s *config.Set) {
	c.Kafka.Bind(s)
	s.String(&c.RedisURL, "redis-url", "REDIS_URL", "redis://127.0.0.1:6379/0", "Redis URL (redis:// or rediss://)")
	s.String(&c.NATSURL, "nats-url", "NATS_URL", "nats://127.0.0.1:4222", "NATS URL of the edge")
	s.String(&c.NATSCreds, "nats-creds", "NATS_CREDS", "", "NATS .creds file (user JWT and seed)")
	s.String(&c.NATSToken, "nats-token", "NATS_TOKEN", "", "NATS token")
	s.String(&c.Region, "region", "REGION", "", "region this deployment serves (required)")
	s.List(&c.Channels, "channels", "NOTIFIER_CHANNELS", events.ChannelNames(), "channels this deployment consumes")
	s.String(&c.Group, "group", "NOTIFIER_GROUP", "", "consumer group (default notifier.<region>)")
	s.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", "127.0.0.1:8083", "HTTP listen address (health, metrics, edge tokens)")
	s.String(&c.APIToken, "api-token", "API_TOKEN", "", "bearer token for POST /v1/edge/token")
	s.String(&c.RateLimits, "rate-limits", "RATE_LIMITS", "", `per-channel limits per second, "sms=100,email=2000[:burst]" (default burst rate/10)`)
	s.Duration(&c.MarkerTTL, "marker-ttl", "NOTIFIER_MARKER_TTL", 7*24*time.Hour, "lifetime of the Redis sent markers")
	s.Duration(&c.DuplicateWindow, "duplicate-window", "EDGE_DUPLICATE_WINDOW", 6*time.Hour, "JetStream de-duplication window of the edge stream")
	s.Duration(&c.StreamMaxAge, "stream-max-age", "EDGE_MAX_AGE", 7*24*time.Hour, "how long the edge stream keeps messages (>= duplicate window)")
	s.Int64(&c.StreamMaxBytes, "stream-max-bytes", "EDGE_MAX_BYTES", 8<<30, "size cap of the edge stream (oldest discarded)")
	s.Int(&c.StreamReplicas, "stream-replicas", "EDGE_REPLICAS", 1, "edge stream replicas (3 on a NATS cluster)")
	s.Int(&c.MaxBatch, "max-batch", "NOTIFIER_MAX_BATCH", 4000, "most records per batch (a batch closes earlier when the linger passes)")
	s.Duration(&c.Linger, "linger", "NOTIFIER_LINGER", 2*time.Millisecond, "how long a batch waits to fill")
	s.Duration(&c.PublishTimeout, "publish-timeout", "NOTIFIER_PUBLISH_TIMEOUT", 5*time.Second, "how long a batch waits for its PubAcks before the partition pauses and retries")
	s.Int(&c.MaxPending, "max-pending", "NOTIFIER_MAX_PENDING", 16384, "publishes awaiting their PubAck (bounds memory when the edge is slow)")
	s.Duration(&c.ReleaseInterval, "release-interval", "NOTIFIER_RELEASE_INTERVAL", time.Second, "how often held notifications are checked for release")
	s.String(&c.DeadLetterTopic, "dead-letter-topic", "DEAD_LETTER_TOPIC", catalog.DeadLetter, "topic for poison records")
	s.Bool(&c.StaleDrop, "stale-drop", "NOTIFIER_STALE_DROP", true, "skip notifications whose sku sold out again (reads inventory.stock.v1)")
	s.Duration(&c.StockReadyTimeout, "stock-ready-timeout", "NOTIFIER_STOCK_READY_TIMEOUT", 30*time.Second, "how long start-up waits for the stock view to catch up")
	s.String(&c.EdgeAccountSeedFile, "edge-account-seed-file", "EDGE_ACCOUNT_SEED_FILE", "", "NATS account seed that signs browser tokens (enables POST /v1/edge/token)")
	s.String(&c.EdgeWSURL, "edge-ws-url", "NATS_WS_URL", "", "websocket URL handed to browsers with their token")
	s.Duration(&c.EdgeTokenTTL, "edge-token-ttl", "EDGE_TOKEN_TTL", 15*time.Minute, "lifetime of a browser edge token")
	s.String(&c.CrashAt, "crash-at", "NOTIFIER_CRASH_AT", "", "TEST ONLY: SIGKILL self at this protocol step (after-reserve|after-publish|after-puback|after-mark)")
	s.Int(&c.CrashAfterN, "crash-after-n", "NOTIFIER_CRASH_AFTER_N", 1, "TEST ONLY: crash the N-th time the step is reached")
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = "notifier." + c.Region
	}
	if len(c.Channels) == 0 {
		c.Channels = events.ChannelNames()
	}
	if c.MarkerTTL <= 0 {
		c.MarkerTTL = 7 * 24 * time.Hour
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = 6 * time.Hour
	}
	if c.StreamMaxAge <= 0 {
		c.StreamMaxAge = 7 * 24 * time.Hour
	}
	if c.MaxBatch <= 0 {
		// Each batch costs three round trips (marker lookup, PubAcks,
		// markers) whatever its size; on a backlog 4,000 ran about a fifth
		// faster than 1,000 (docs/benchmarks/notifier.md). A live stream of
		// notifications still makes small batches: the linger closes them.
		c.MaxBatch = 4000
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 16384
	}
	if c.ReleaseInterval <= 0 {
		c.ReleaseInterval = time.Second
	}
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = catalog.DeadLetter
	}
	if c.StockReadyTimeout <= 0 {
		c.StockReadyTimeout = 30 * time.Second
	}
	if c.EdgeTokenTTL <= 0 {
		c.EdgeTokenTTL = 15 * time.Minute
	}
	if c.CrashAfterN <= 0 {
		c.CrashAfterN = 1
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate names every setting that is wrong.
func (c Config) Validate() error {
	var p config.Problems
	p.Add(c.Kafka.Validate())
	if !events.ValidRegion(c.Region) {
		p.Addf("REGION", "%q is not a region id (%s)", c.Region, events.RegionPattern)
	}
	for _, ch := range c.Channels {
		if !events.ValidChannel(ch) {
			p.Addf("NOTIFIER_CHANNELS", "%q is not one of %v", ch, events.ChannelNames())
		}
	}
	if c.RedisURL == "" {
		p.Addf("REDIS_URL", "required")
	}
	if c.NATSURL == "" {
		p.Addf("NATS_URL", "required")
	}
	if _, err := ratelimit.Parse(c.RateLimits, events.ValidChannel); err != nil {
		p.Addf("RATE_LIMITS", "%v", err)
	}
	if c.StreamMaxAge > 0 && c.DuplicateWindow > c.StreamMaxAge {
		p.Addf("EDGE_DUPLICATE_WINDOW", "%s is longer than EDGE_MAX_AGE %s: the window must outlive no message", c.DuplicateWindow, c.StreamMaxAge)
	}
	if c.MarkerTTL > 0 && c.MarkerTTL < c.DuplicateWindow {
		p.Addf("NOTIFIER_MARKER_TTL", "%s is shorter than EDGE_DUPLICATE_WINDOW %s", c.MarkerTTL, c.DuplicateWindow)
	}
	if c.EdgeAccountSeedFile != "" && c.APIToken == "" {
		p.Addf("API_TOKEN", "required when EDGE_ACCOUNT_SEED_FILE enables the token endpoint")
	}
	if c.CrashAt != "" && !slices.Contains(pipeline.CrashPoints, c.CrashAt) {
		p.Addf("NOTIFIER_CRASH_AT", "%q is not one of %v", c.CrashAt, pipeline.CrashPoints)
	}
	return p.Err()
}

// Topics are the notify topics this deployment consumes.
func (c Config) Topics() []string {
	out := make([]string, 0, len(c.Channels))
	for _, ch := range c.Channels {
		out = append(out, catalog.Notify(c.Region, ch))
	}
	return out
}

func (c Config) String() string {
	return fmt.Sprintf("notifier %s group %s channels %v", c.Region, c.Group, c.Channels)
}
