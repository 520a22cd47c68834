// Package app runs the engagement service's `run` command from a Config.
// It is public so the local stack can run the service in-process with its
// own Prometheus registry.
package app

import (
	"fmt"
	"time"

	"backinstock/services/engagement/internal/reports"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/clicklink"
)

// Config is the configuration of `engagement run`.
type Config struct {
	Kafka    kafka.Config
	RedisURL string
	HTTPAddr string
	// APIToken is the bearer token of the /v1 API (the tracked links are
	// public: their token is their authority).
	APIToken string
	// ClickKeys verify the tracked links (CLICK_KEYS, kid:secret,...: the
	// gateway's value; all verify).
	ClickKeys   string
	ClicksTopic string
	// OrdersTopic is where POST /v1/orders writes and the attribution
	// reads; StatusTopic the delivery outcomes the attribution reads.
	OrdersTopic string
	StatusTopic string
	// AttributionGroup is the consumer group of the attribution; "off"
	// runs none (a replica that only serves HTTP).
	AttributionGroup string
	// DeadLetterTopic receives the records the consumer groups (attribution,
	// reports) cannot decode.
	DeadLetterTopic string
	// ClickWindow and ViewWindow: an order line is direct when the buyer
	// clicked a notification of the SKU within ClickWindow before the
	// order, assisted when one was delivered within ViewWindow and there
	// was no such click.
	ClickWindow, ViewWindow time.Duration
	// Horizon is how late (in event time) an order may arrive or be
	// replayed and still meet its touches; at least orders.v1's retention.
	Horizon time.Duration
	// RequestTimeout bounds each write of a click (the Redis counters, the
	// Kafka event) and each API read.
	RequestTimeout time.Duration
	// ReportsMarkerTTL is how long the report consumer keeps a
	// notification's counted statuses and a click's marker: longer than
	// the consumed topics keep their records (clicks: 30 days), so no
	// replay meets a record whose marker has gone.
	ReportsMarkerTTL time.Duration
	// ReportsRetention is how long a day's report aggregates are kept
	// after their last write.
	ReportsRetention time.Duration

	// ReportsGroup is the report consumer's group (REPORTS_GROUP). Its
	// members together fill one Redis; two groups writing into the same
	// Redis count nothing twice (every write is idempotent), so a group per
	// region is right whether the regions share a Redis or not.
	ReportsGroup string
	// ReportTopics are the report consumer's topics; only tests change
	// them (their own names per test).
	ReportTopics reports.Topics

	// OnListen, when set, receives the bound HTTP address.
	OnListen func(addr string)
	// Now, when set, is the clock of the link expiry and the click times
	// (tests).
	Now func() time.Time
}

// defaults are the settings a Config starts from: Bind's flag defaults and
// what setDefaults fills into the fields an in-process caller leaves zero.
func defaults() Config {
	return Config{
		RedisURL:    "redis://127.0.0.1:6379/0",
		HTTPAddr:    "127.0.0.1:8085",
		ClicksTopic: catalog.Clicks,
		OrdersTopic: catalog.Orders,
		StatusTopic: catalog.DeliveryStatus,
		// One group for every replica: each order line is decided once.
		AttributionGroup: "engagement-attribution",
		DeadLetterTopic:  catalog.DeadLetter,
		// The windows, the ones the merchants' other apps report
		// with: a click a day before, a delivery ten days before.
		ClickWindow: 24 * time.Hour,
		ViewWindow:  10 * 24 * time.Hour,
		// orders.v1, engagement.clicks.v1: 30 days of retention.
		Horizon: 30 * 24 * time.Hour,
		// A person waits on the redirect while a click is recorded: two
		// seconds each for Redis and Kafka, then the redirect goes ahead.
		RequestTimeout: 2 * time.Second,
		// A day past the longest retention of the consumed topics
		// (engagement.clicks.v1, 30 days).
		ReportsMarkerTTL: 31 * 24 * time.Hour,
		// Thirteen months: a year compared with the year before.
		ReportsRetention: 400 * 24 * time.Hour,
		ReportsGroup:     "engagement-reports",
	}
}

// Bind registers every setting on s, with defaults() as the flag defaults.
func (c *Config) Bind(s *config.Set) {
	d := defaults()
	c.Kafka.Bind(s)
	s.String(&c.RedisURL, "redis-url", "REDIS_URL", d.RedisURL, "Redis URL (redis:// or rediss://; ?addr= for a cluster): the click counters")
	s.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", d.HTTPAddr, "HTTP listen address (tracked links /c/<token>, the API, /healthz, /readyz, /metrics)")
	s.String(&c.APIToken, "api-token", "API_TOKEN", "", "bearer token the /v1 API requires (required)")
	s.String(&c.ClickKeys, "click-keys", "CLICK_KEYS", "", "keys of the tracked links, kid:secret,... (the gateway's value; every key verifies) (required)")
	s.String(&c.ClicksTopic, "clicks-topic", "ENGAGEMENT_CLICKS_TOPIC", d.ClicksTopic, "topic of the click events")
	s.Duration(&c.ReportsMarkerTTL, "reports-marker-ttl", "REPORTS_MARKER_TTL", d.ReportsMarkerTTL, "how long the report consumer remembers each counted status and click (longer than the consumed topics' retention, so a replay counts nothing twice)")
	s.String(&c.ReportsGroup, "reports-group", "REPORTS_GROUP", d.ReportsGroup, "consumer group of the report aggregates (one per Redis they live in; `engagement rebuild` needs it stopped)")
	s.Duration(&c.ReportsRetention, "reports-retention", "REPORTS_RETENTION", d.ReportsRetention, "how long a day's report aggregates are kept after their last write")
	s.String(&c.OrdersTopic, "orders-topic", "ORDERS_TOPIC", d.OrdersTopic, "topic of the orders (POST /v1/orders writes, the attribution reads)")
	s.String(&c.StatusTopic, "status-topic", "DELIVERY_STATUS_TOPIC", d.StatusTopic, "topic of the delivery outcomes the attribution and the reports read")
	s.String(&c.AttributionGroup, "attribution-group", "ATTRIBUTION_GROUP", d.AttributionGroup, `consumer group of the attribution ("off": run none)`)
	s.String(&c.DeadLetterTopic, "dead-letter-topic", "DEAD_LETTER_TOPIC", d.DeadLetterTopic, "topic for the records the consumer groups (attribution, reports) cannot decode")
	s.Duration(&c.ClickWindow, "attribution-click-window", "ATTRIBUTION_CLICK_WINDOW", d.ClickWindow, "an order line is direct when the buyer clicked a notification of the sku within this before the order")
	s.Duration(&c.ViewWindow, "attribution-view-window", "ATTRIBUTION_VIEW_WINDOW", d.ViewWindow, "an order line is assisted when a notification of the sku was delivered to the buyer within this before the order, without a click in the click window")
	s.Duration(&c.Horizon, "attribution-horizon", "ATTRIBUTION_HORIZON", d.Horizon, "how long past the view window touches and order lines are kept for late or replayed records; at least orders.v1's retention")
	s.Duration(&c.RequestTimeout, "request-timeout", "REQUEST_TIMEOUT", d.RequestTimeout, "longest each write of a click (Redis counters, Kafka event) and each API request waits; a click is redirected either way")
}

// setDefaults fills the fields an in-process caller left zero (the local
// stack and the tests set only what they care about).
func (c *Config) setDefaults() {
	d := defaults()
	config.Default(&c.HTTPAddr, d.HTTPAddr)
	config.Default(&c.ClicksTopic, d.ClicksTopic)
	config.Default(&c.OrdersTopic, d.OrdersTopic)
	config.Default(&c.StatusTopic, d.StatusTopic)
	config.Default(&c.AttributionGroup, d.AttributionGroup)
	config.Default(&c.DeadLetterTopic, d.DeadLetterTopic)
	config.Default(&c.ClickWindow, d.ClickWindow)
	config.Default(&c.ViewWindow, d.ViewWindow)
	config.Default(&c.Horizon, d.Horizon)
	config.Default(&c.RequestTimeout, d.RequestTimeout)
	config.Default(&c.ReportsMarkerTTL, d.ReportsMarkerTTL)
	config.Default(&c.ReportsRetention, d.ReportsRetention)
	config.Default(&c.ReportsGroup, d.ReportsGroup)
	// The report consumer reads the clicks and outcomes the attribution
	// reads: one setting names each topic for both.
	config.Default(&c.ReportTopics.Clicks, c.ClicksTopic)
	config.Default(&c.ReportTopics.DeliveryStatus, c.StatusTopic)
	c.ReportTopics = c.ReportTopics.WithDefaults()
}

// maxWindow bounds the attribution windows and horizon: a quarter, past
// any topic's retention.
const maxWindow = 90 * 24 * time.Hour

// Validate names every setting of `engagement run` that is wrong.
func (c Config) Validate() error {
	var p config.Problems
	c.validateStores(&p)
	if c.HTTPAddr == "" {
		p.Addf("HTTP_ADDR", "required")
	}
	if c.APIToken == "" {
		p.Addf("API_TOKEN", "required")
	}
	if c.ClickKeys == "" {
		p.Addf("CLICK_KEYS", "required: the tracked links cannot be verified without them")
	} else if _, err := clicklink.ParseKeys(c.ClickKeys); err != nil {
		p.Addf("CLICK_KEYS", "%v", err)
	}
	if c.ClicksTopic == "" {
		p.Addf("ENGAGEMENT_CLICKS_TOPIC", "required")
	}
	if c.OrdersTopic == "" {
		p.Addf("ORDERS_TOPIC", "required")
	}
	if c.StatusTopic == "" {
		p.Addf("DELIVERY_STATUS_TOPIC", "required")
	}
	if c.AttributionGroup == "" {
		p.Addf("ATTRIBUTION_GROUP", `required ("off" runs no attribution)`)
	}
	if c.DeadLetterTopic == "" {
		p.Addf("DEAD_LETTER_TOPIC", "required")
	}
	if c.ClickWindow < time.Minute || c.ClickWindow > maxWindow {
		p.Addf("ATTRIBUTION_CLICK_WINDOW", "must be between 1m and %s, got %s", maxWindow, c.ClickWindow)
	}
	if c.ViewWindow < time.Minute || c.ViewWindow > maxWindow {
		p.Addf("ATTRIBUTION_VIEW_WINDOW", "must be between 1m and %s, got %s", maxWindow, c.ViewWindow)
	} else if c.ViewWindow < c.ClickWindow {
		// A click follows a delivery: a view window shorter than the click
		// window would make a click count where its delivery does not.
		p.Addf("ATTRIBUTION_VIEW_WINDOW", "must be at least ATTRIBUTION_CLICK_WINDOW (%s), got %s", c.ClickWindow, c.ViewWindow)
	}
	if c.Horizon < 24*time.Hour || c.Horizon > maxWindow {
		p.Addf("ATTRIBUTION_HORIZON", "must be between 24h0m0s and %s, got %s", maxWindow, c.Horizon)
	}
	if c.RequestTimeout < 10*time.Millisecond || c.RequestTimeout > time.Minute {
		p.Addf("REQUEST_TIMEOUT", "must be between 10ms and 1m, got %s", c.RequestTimeout)
	}
	return p.Err()
}

// ValidateRebuild names every setting of `engagement rebuild` that is
// wrong: it needs Kafka, Redis and the report settings, not the HTTP side.
func (c Config) ValidateRebuild() error {
	var p config.Problems
	c.validateStores(&p)
	return p.Err()
}

func (c Config) validateStores(p *config.Problems) {
	p.Add(c.Kafka.Validate())
	if c.RedisURL == "" {
		p.Addf("REDIS_URL", "required")
	}
	if err := kafka.CheckInstanceID(c.ReportsGroup); err != nil { // a group id follows the same rule
		p.Addf("REPORTS_GROUP", "%v", err)
	}
	if c.ReportsMarkerTTL < time.Hour {
		p.Addf("REPORTS_MARKER_TTL", "must be at least 1h (longer than the consumed topics' retention), got %s", c.ReportsMarkerTTL)
	}
	if c.ReportsRetention < 24*time.Hour {
		p.Addf("REPORTS_RETENTION", "must be at least 24h, got %s", c.ReportsRetention)
	}
}

func (c Config) String() string { return fmt.Sprintf("engagement on %s", c.HTTPAddr) }
