// Package app runs the notifier's subcommands (run, replay) from a Config.
// It is public so the local stack can run one notifier per region
// in-process with its own Prometheus registry.
package app

import (
	"fmt"
	"runtime"
	"slices"
	"time"

	"backinstock/services/notifier/internal/pipeline"
	"backinstock/services/notifier/internal/ratelimit"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/shared/stockview"
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
	// NATSCAFile is the CA bundle of the NATS servers' TLS certificate.
	NATSCAFile string
	Region     string
	Channels   []string
	// Group defaults to notifier.<region>.
	Group    string
	HTTPAddr string
	APIToken string

	// GroupInstanceID makes this replica a static member of the group
	// (shared/kafka GroupOptions.InstanceID): unique per replica, stable
	// across its restarts.
	GroupInstanceID string

	// RateLimits is "channel=rate[:burst],..." per second for this deployment.
	RateLimits string

	MarkerTTL       time.Duration
	DuplicateWindow time.Duration
	StreamMaxAge    time.Duration
	StreamMaxBytes  int64
	StreamReplicas  int

	MaxBatch       int
	Linger         time.Duration
	PublishTimeout time.Duration
	MaxPending     int
	// EdgeConnections is how many NATS connections the publishes spread
	// over, a batch each in turn (edge.Publisher); 0: one per 4 cores.
	EdgeConnections int
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

	// EdgeSystemCreds is a .creds file of a system-account user: with it the
	// notifier enforces EdgeMaxConnsPerUser (internal/edgeguard) on the
	// edge's browser users. EdgeOperatorSeedFile (an operator signing key)
	// adds POST /v1/edge/revocations.
	EdgeSystemCreds      string
	EdgeOperatorSeedFile string
	EdgeMaxConnsPerUser  int

	// CrashAt and CrashAfterN are a TEST-ONLY hook, in builds with
	// -tags crashhook only: at the CrashAfterN-th time the protocol reaches
	// step CrashAt (after-reserve, after-publish, after-puback, after-mark)
	// the process SIGKILLs itself. Off when empty.
	CrashAt     string
	CrashAfterN int

	// OnListen, when set, receives the bound HTTP address.
	OnListen func(addr string)
	// Now, when set, replaces the clock (quiet-hours tests).
	Now func() time.Time
}

// defaults are the settings a Config starts from: Bind's flag defaults and
// what setDefaults fills into the fields an in-process caller leaves zero.
func defaults() Config {
	return Config{
		RedisURL:        "redis://127.0.0.1:6379/0",
		NATSURL:         "nats://127.0.0.1:4222",
		Channels:        events.ChannelNames(),
		HTTPAddr:        "127.0.0.1:8083",
		MarkerTTL:       7 * 24 * time.Hour,
		DuplicateWindow: 6 * time.Hour,
		StreamMaxAge:    7 * 24 * time.Hour,
		StreamMaxBytes:  8 << 30,
		StreamReplicas:  1,
		// Each batch costs three round trips (marker lookup, PubAcks,
		// markers) whatever its size; on a backlog 4,000 ran about a fifth
		// faster than 1,000 (docs/benchmarks/notifier.md). A live stream of
		// notifications still makes small batches: the linger closes them.
		MaxBatch:       4000,
		Linger:         2 * time.Millisecond,
		PublishTimeout: 5 * time.Second,
		MaxPending:     16384,
		// One connection per 4 cores: the server reads a connection's
		// messages one at a time (3.4 µs a message in a profile on the
		// 2-core machine, docs/benchmarks.md "Edge streams"), so one
		// connection carries at most about 300,000 a second there; on 2
		// cores more connections measured no gain.
		EdgeConnections:   max(1, runtime.GOMAXPROCS(0)/4),
		ReleaseInterval:   time.Second,
		DeadLetterTopic:   catalog.DeadLetter,
		StaleDrop:         true,
		StockReadyTimeout: stockview.DefaultCatchUpTimeout,
		EdgeTokenTTL:      15 * time.Minute,
		// A browser opens one connection per tab; 16 tabs is generous for a
		// person and small against the 300 one token opened unchecked.
		EdgeMaxConnsPerUser: 16,
		CrashAfterN:         1,
	}
}

// Bind registers every setting on s, with defaults() as the flag defaults.
func (c *Config) Bind(s *config.Set) {
	d := defaults()
	c.bindDelivery(s, d)
	s.String(&c.GroupInstanceID, "group-instance-id", "KAFKA_GROUP_INSTANCE_ID", "", "static group member id, unique per replica and kept across its restarts, e.g. the pod name (empty: dynamic member)")
	s.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", d.HTTPAddr, "HTTP listen address (health, metrics, edge tokens)")
	s.String(&c.APIToken, "api-token", "API_TOKEN", "", "bearer token of the edge-token, revocation and admin (pause/resume) routes; empty: the admin routes answer 503")
	s.Duration(&c.DuplicateWindow, "duplicate-window", "EDGE_DUPLICATE_WINDOW", d.DuplicateWindow, "JetStream de-duplication window of each edge stream")
	s.Duration(&c.StreamMaxAge, "stream-max-age", "EDGE_MAX_AGE", d.StreamMaxAge, "how long the edge streams keep messages (>= duplicate window)")
	s.Int64(&c.StreamMaxBytes, "stream-max-bytes", "EDGE_MAX_BYTES", d.StreamMaxBytes, "size cap of the region's edge, split evenly over its channel streams (oldest discarded)")
	s.Int(&c.StreamReplicas, "stream-replicas", "EDGE_REPLICAS", d.StreamReplicas, "edge streams' replicas (3 on a NATS cluster)")
	s.Duration(&c.Linger, "linger", "NOTIFIER_LINGER", d.Linger, "how long a batch waits to fill")
	s.Duration(&c.ReleaseInterval, "release-interval", "NOTIFIER_RELEASE_INTERVAL", d.ReleaseInterval, "how often held notifications are checked for release")
	s.String(&c.DeadLetterTopic, "dead-letter-topic", "DEAD_LETTER_TOPIC", d.DeadLetterTopic, "topic for poison records")
	s.String(&c.EdgeAccountSeedFile, "edge-account-seed-file", "EDGE_ACCOUNT_SEED_FILE", "", "NATS account seed that signs browser tokens (enables POST /v1/edge/token)")
	s.String(&c.EdgeWSURL, "edge-ws-url", "NATS_WS_URL", "", "websocket URL handed to browsers with their token")
	s.Duration(&c.EdgeTokenTTL, "edge-token-ttl", "EDGE_TOKEN_TTL", d.EdgeTokenTTL, "lifetime of a browser edge token")
	s.String(&c.EdgeSystemCreds, "edge-system-creds", "EDGE_SYSTEM_CREDS", "", "NATS system-account .creds file: enables the per-user connection limit (and, with --edge-operator-seed-file, revocations)")
	s.String(&c.EdgeOperatorSeedFile, "edge-operator-seed-file", "EDGE_OPERATOR_SEED_FILE", "", "operator signing key seed that re-signs the edge account with revocations (enables POST /v1/edge/revocations)")
	s.Int(&c.EdgeMaxConnsPerUser, "edge-max-conns-per-user", "EDGE_MAX_CONNS_PER_USER", d.EdgeMaxConnsPerUser, "most edge connections one user_id keeps open (the newest beyond are closed)")
	c.bindCrash(s, d)
}

// bindDelivery registers the settings the delivery protocol runs with:
// `notifier run`'s and a window replay's (`notifier replay --to`), which
// delivers with the same pipeline.
func (c *Config) bindDelivery(s *config.Set, d Config) {
	c.Kafka.Bind(s)
	s.String(&c.RedisURL, "redis-url", "REDIS_URL", d.RedisURL, "Redis URL (redis:// or rediss://)")
	s.String(&c.NATSURL, "nats-url", "NATS_URL", d.NATSURL, "NATS URL of the edge")
	s.String(&c.NATSCreds, "nats-creds", "NATS_CREDS", "", "NATS .creds file (user JWT and seed)")
	s.String(&c.NATSToken, "nats-token", "NATS_TOKEN", "", "NATS token")
	s.String(&c.NATSCAFile, "nats-tls-ca-file", "NATS_TLS_CA_FILE", "", "PEM CA bundle for the NATS servers' TLS certificate (empty: system roots)")
	s.String(&c.Region, "region", "REGION", "", "region this deployment serves (required)")
	s.List(&c.Channels, "channels", "NOTIFIER_CHANNELS", d.Channels, "channels this deployment consumes")
	s.String(&c.Group, "group", "NOTIFIER_GROUP", "", "consumer group (default notifier.<region>)")
	s.String(&c.RateLimits, "rate-limits", "RATE_LIMITS", "", `per-channel limits per second, "sms=100,email=2000[:burst]" (default burst rate/10)`)
	s.Duration(&c.MarkerTTL, "marker-ttl", "NOTIFIER_MARKER_TTL", d.MarkerTTL, "lifetime of the Redis sent markers")
	s.Int(&c.MaxBatch, "max-batch", "NOTIFIER_MAX_BATCH", d.MaxBatch, "most records per batch (a batch closes earlier when the linger passes)")
	s.Duration(&c.PublishTimeout, "publish-timeout", "NOTIFIER_PUBLISH_TIMEOUT", d.PublishTimeout, "how long a batch waits for its PubAcks before the partition pauses and retries")
	s.Int(&c.MaxPending, "max-pending", "NOTIFIER_MAX_PENDING", d.MaxPending, "publishes awaiting their PubAck (bounds memory when the edge is slow)")
	s.Int(&c.EdgeConnections, "edge-connections", "NOTIFIER_EDGE_CONNECTIONS", d.EdgeConnections, "NATS connections the edge publishes spread over, a batch each in turn (the server reads one connection's messages one at a time); default one per 4 cores")
	s.Bool(&c.StaleDrop, "stale-drop", "NOTIFIER_STALE_DROP", d.StaleDrop, "skip notifications whose sku sold out again (reads inventory.stock.v1)")
	s.Duration(&c.StockReadyTimeout, "stock-ready-timeout", "NOTIFIER_STOCK_READY_TIMEOUT", d.StockReadyTimeout, "how long start-up waits for the stock view to catch up")
}

// setDefaults fills the fields an in-process caller left zero (the local
// stack and the tests set only what they care about). From the command line
// every field already holds its flag value, and Validate refuses a zero or
// negative one there, naming its variable.
func (c *Config) setDefaults() {
	d := defaults()
	if c.Group == "" {
		c.Group = "notifier." + c.Region
	}
	if len(c.Channels) == 0 {
		c.Channels = d.Channels
	}
	config.Default(&c.MarkerTTL, d.MarkerTTL)
	config.Default(&c.DuplicateWindow, d.DuplicateWindow)
	config.Default(&c.StreamMaxAge, d.StreamMaxAge)
	config.Default(&c.PublishTimeout, d.PublishTimeout)
	config.Default(&c.ReleaseInterval, d.ReleaseInterval)
	config.Default(&c.StockReadyTimeout, d.StockReadyTimeout)
	config.Default(&c.EdgeTokenTTL, d.EdgeTokenTTL)
	config.Default(&c.EdgeMaxConnsPerUser, d.EdgeMaxConnsPerUser)
	config.Default(&c.MaxBatch, d.MaxBatch)
	config.Default(&c.MaxPending, d.MaxPending)
	config.Default(&c.EdgeConnections, d.EdgeConnections)
	config.Default(&c.CrashAfterN, d.CrashAfterN)
	config.Default(&c.DeadLetterTopic, d.DeadLetterTopic)
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate names every setting that is wrong.
func (c Config) Validate() error {
	var p config.Problems
	c.validateDelivery(&p)
	if c.GroupInstanceID != "" {
		if err := kafka.CheckInstanceID(c.GroupInstanceID); err != nil {
			p.Addf("KAFKA_GROUP_INSTANCE_ID", "%v", err)
		}
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
	if c.EdgeSystemCreds != "" && c.EdgeAccountSeedFile == "" {
		p.Addf("EDGE_ACCOUNT_SEED_FILE", "required with EDGE_SYSTEM_CREDS: the guard counts that account's users")
	}
	if c.EdgeOperatorSeedFile != "" && c.EdgeSystemCreds == "" {
		p.Addf("EDGE_SYSTEM_CREDS", "required with EDGE_OPERATOR_SEED_FILE: revocations are pushed through the system account")
	}
	config.Positive(&p, "EDGE_DUPLICATE_WINDOW", c.DuplicateWindow)
	config.Positive(&p, "EDGE_MAX_AGE", c.StreamMaxAge)
	config.Positive(&p, "NOTIFIER_RELEASE_INTERVAL", c.ReleaseInterval)
	config.Positive(&p, "EDGE_TOKEN_TTL", c.EdgeTokenTTL)
	config.Positive(&p, "EDGE_MAX_CONNS_PER_USER", c.EdgeMaxConnsPerUser)
	if crashHooks { // the setting exists in crash-test builds only
		config.Positive(&p, "NOTIFIER_CRASH_AFTER_N", c.CrashAfterN)
	}
	config.NotNegative(&p, "NOTIFIER_LINGER", c.Linger)
	config.NotNegative(&p, "EDGE_REPLICAS", c.StreamReplicas)
	if c.CrashAt != "" && !crashHooks {
		p.Addf("NOTIFIER_CRASH_AT", "this build has no crash hook (the crash tests build with -tags crashhook)")
	} else if c.CrashAt != "" && !slices.Contains(pipeline.CrashPoints, c.CrashAt) {
		p.Addf("NOTIFIER_CRASH_AT", "%q is not one of %v", c.CrashAt, pipeline.CrashPoints)
	}
	return p.Err()
}

// validateDelivery checks what bindDelivery binds.
func (c Config) validateDelivery(p *config.Problems) {
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
	config.Positive(p, "NOTIFIER_MARKER_TTL", c.MarkerTTL)
	config.Positive(p, "NOTIFIER_PUBLISH_TIMEOUT", c.PublishTimeout)
	config.Positive(p, "NOTIFIER_STOCK_READY_TIMEOUT", c.StockReadyTimeout)
	config.Positive(p, "NOTIFIER_MAX_BATCH", c.MaxBatch)
	config.Positive(p, "NOTIFIER_MAX_PENDING", c.MaxPending)
	config.Positive(p, "NOTIFIER_EDGE_CONNECTIONS", c.EdgeConnections)
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
