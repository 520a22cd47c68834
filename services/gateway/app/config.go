// Package app runs the gateway's `run` command from a Config. It is public
// so the local stack can run one gateway per region in-process with its own
// Prometheus registry.
package app

import (
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"backinstock/services/gateway/internal/delivery"
	"backinstock/services/gateway/internal/email"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// Providers the gateway has, per channel. The others (sms, app, web, and
// webhook for any channel) come in later steps of issue 14.
var Providers = map[string][]string{
	events.ChannelEmail: {email.ProviderName},
}

// Config is the configuration of `gateway run`.
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
	// Channels are the channels this deployment delivers; each needs a
	// provider in ProviderSpec.
	Channels []string
	// ProviderSpec is "channel=provider,..." (GATEWAY_PROVIDERS).
	ProviderSpec string
	HTTPAddr     string

	// Workers is how many notifications of one channel this replica sends
	// at once; MaxAckPending bounds those out over all replicas.
	Workers       int
	MaxAckPending int
	// AckWait, MaxAttempts, MaxBackoff, RetryDelay: the retry schedule
	// (package retry).
	AckWait     time.Duration
	MaxAttempts int
	MaxBackoff  time.Duration
	RetryDelay  time.Duration
	// MarkerTTL is how long a delivered marker lives: at least as long as
	// the edge stream keeps messages (EDGE_MAX_AGE, 7 days by default).
	MarkerTTL time.Duration
	// StopTimeout bounds how long a stop waits for the sends in flight.
	StopTimeout time.Duration
	StatusTopic string

	TemplatesDir  string
	DefaultLocale string

	SMTP email.Config
	// MessageIDDomain is the right-hand side of every Message-ID (default:
	// the From address's domain).
	MessageIDDomain string
	// UnsubscribeKeys sign the one-click unsubscribe links (UNSUBSCRIBE_KEYS,
	// the wishlist API's value: kid:secret,..., the first signs);
	// UnsubscribeBaseURL is the wishlist API's public address the links
	// point at. Both or neither: without them emails carry no link.
	UnsubscribeKeys    string
	UnsubscribeBaseURL string

	// CrashAt and CrashAfterN are a TEST-ONLY hook: at the CrashAfterN-th
	// time the protocol reaches step CrashAt (delivery.CrashPoints) the
	// process SIGKILLs itself. Off when empty.
	CrashAt     string
	CrashAfterN int
	// Crash, when set, replaces CrashAt in-process (tests): it is called at
	// every crash point and returns true to abandon the message there.
	Crash func(point string) bool

	// OnListen, when set, receives the bound HTTP address.
	OnListen func(addr string)
}

// defaults are the settings a Config starts from: Bind's flag defaults and
// what setDefaults fills into the fields an in-process caller leaves zero.
func defaults() Config {
	return Config{
		RedisURL:     "redis://127.0.0.1:6379/0",
		NATSURL:      "nats://127.0.0.1:4222",
		Channels:     []string{events.ChannelEmail},
		ProviderSpec: events.ChannelEmail + "=" + email.ProviderName,
		HTTPAddr:     "127.0.0.1:8084",
		// A send is mostly waiting on the SMTP server: 16 connections keep
		// one local Mailpit busy without queueing behind each other.
		Workers:       16,
		MaxAckPending: 1024,
		AckWait:       30 * time.Second,
		MaxAttempts:   12,
		MaxBackoff:    10 * time.Minute,
		RetryDelay:    2 * time.Second,
		MarkerTTL:     7 * 24 * time.Hour,
		StopTimeout:   30 * time.Second,
		StatusTopic:   catalog.DeliveryStatus,
		DefaultLocale: "en",
		SMTP: email.Config{
			Host: "127.0.0.1", Port: 587, TLS: email.TLSStartTLS, Timeout: 15 * time.Second,
		},
		CrashAfterN: 1,
	}
}

// Bind registers every setting on s, with defaults() as the flag defaults.
func (c *Config) Bind(s *config.Set) {
	d := defaults()
	c.Kafka.Bind(s)
	s.String(&c.RedisURL, "redis-url", "REDIS_URL", d.RedisURL, "Redis URL (redis:// or rediss://)")
	s.String(&c.NATSURL, "nats-url", "NATS_URL", d.NATSURL, "NATS URL of the edge")
	s.String(&c.NATSCreds, "nats-creds", "NATS_CREDS", "", "NATS .creds file (user JWT and seed)")
	s.String(&c.NATSToken, "nats-token", "NATS_TOKEN", "", "NATS token")
	s.String(&c.NATSCAFile, "nats-tls-ca-file", "NATS_TLS_CA_FILE", "", "PEM CA bundle for the NATS servers' TLS certificate (empty: system roots)")
	s.String(&c.Region, "region", "REGION", "", "region this deployment serves (required)")
	s.List(&c.Channels, "channels", "GATEWAY_CHANNELS", d.Channels, "channels this deployment delivers")
	s.String(&c.ProviderSpec, "providers", "GATEWAY_PROVIDERS", d.ProviderSpec, `provider per channel, "email=smtp"`)
	s.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", d.HTTPAddr, "HTTP listen address (health, readiness, metrics)")
	s.Int(&c.Workers, "workers", "GATEWAY_WORKERS", d.Workers, "notifications of one channel this replica sends at once")
	s.Int(&c.MaxAckPending, "max-ack-pending", "GATEWAY_MAX_ACK_PENDING", d.MaxAckPending, "notifications of one channel out at once over all replicas (sending or waiting to retry): the backpressure bound")
	s.Duration(&c.AckWait, "ack-wait", "GATEWAY_ACK_WAIT", d.AckWait, "how long a replica may hold a notification without a sign of life before JetStream hands it to another (doubles per redelivery)")
	s.Int(&c.MaxAttempts, "max-attempts", "GATEWAY_MAX_ATTEMPTS", d.MaxAttempts, "deliveries of one notification before a transient failure is final")
	s.Duration(&c.MaxBackoff, "max-backoff", "GATEWAY_MAX_BACKOFF", d.MaxBackoff, "cap of the redelivery back-off")
	s.Duration(&c.RetryDelay, "retry-delay", "GATEWAY_RETRY_DELAY", d.RetryDelay, "delay after the first transient failure (jittered; later ones add the back-off's growth)")
	s.Duration(&c.MarkerTTL, "marker-ttl", "GATEWAY_MARKER_TTL", d.MarkerTTL, "lifetime of the Redis delivered markers (at least the edge stream's max age)")
	s.Duration(&c.StopTimeout, "stop-timeout", "GATEWAY_STOP_TIMEOUT", d.StopTimeout, "how long a stop waits for the sends in flight to finish and be acknowledged")
	s.String(&c.StatusTopic, "status-topic", "DELIVERY_STATUS_TOPIC", d.StatusTopic, "topic of the delivery receipts")
	s.String(&c.TemplatesDir, "templates-dir", "GATEWAY_TEMPLATES_DIR", "", "directory of templates overriding the built-in ones (email/<locale>/subject.txt, body.html, body.txt)")
	s.String(&c.DefaultLocale, "default-locale", "GATEWAY_DEFAULT_LOCALE", d.DefaultLocale, "locale of a notification whose locale has no templates")
	s.String(&c.SMTP.Host, "smtp-host", "SMTP_HOST", d.SMTP.Host, "SMTP server host")
	s.Int(&c.SMTP.Port, "smtp-port", "SMTP_PORT", d.SMTP.Port, "SMTP server port (587 submission, 465 implicit TLS, 25 relay)")
	s.String(&c.SMTP.TLS, "smtp-tls", "SMTP_TLS", d.SMTP.TLS, "TLS to the SMTP server: starttls (required), implicit, none")
	s.String(&c.SMTP.CAFile, "smtp-ca-file", "SMTP_CA_FILE", "", "PEM CA bundle for the SMTP server's certificate (default: the system's)")
	s.Bool(&c.SMTP.SkipVerify, "smtp-tls-skip-verify", "SMTP_TLS_SKIP_VERIFY", false, "do not verify the SMTP server's certificate (testing only)")
	s.String(&c.SMTP.Username, "smtp-username", "SMTP_USERNAME", "", "SMTP AUTH user (empty: no AUTH)")
	s.String(&c.SMTP.Password, "smtp-password", "SMTP_PASSWORD", "", "SMTP AUTH password")
	s.String(&c.SMTP.Auth, "smtp-auth", "SMTP_AUTH", "", "SMTP AUTH mechanism: "+strings.Join(email.AuthMechanisms, ", ")+" (default AUTODISCOVER)")
	s.String(&c.SMTP.HELO, "smtp-helo", "SMTP_HELO", "", "name to greet the SMTP server with (default: the host name)")
	s.Duration(&c.SMTP.Timeout, "smtp-timeout", "SMTP_TIMEOUT", d.SMTP.Timeout, "timeout of the SMTP dial and of each SMTP command (below GATEWAY_ACK_WAIT)")
	s.Int(&c.SMTP.Conns, "smtp-connections", "SMTP_CONNECTIONS", 0, "open SMTP connections at most (default GATEWAY_WORKERS)")
	s.String(&c.SMTP.From, "email-from", "EMAIL_FROM", "", `From address of the emails, "Shop <shop@example.com>" (required for the email channel)`)
	s.String(&c.MessageIDDomain, "email-message-id-domain", "EMAIL_MESSAGE_ID_DOMAIN", "", "domain of the Message-IDs (default: EMAIL_FROM's)")
	s.String(&c.UnsubscribeKeys, "unsubscribe-keys", "UNSUBSCRIBE_KEYS", "", "keys of the one-click unsubscribe links, kid:secret,... (the wishlist API's value; the first signs)")
	s.String(&c.UnsubscribeBaseURL, "unsubscribe-base-url", "GATEWAY_UNSUBSCRIBE_BASE_URL", "", "public base URL of the wishlist API the unsubscribe links point at (with UNSUBSCRIBE_KEYS)")
	s.String(&c.CrashAt, "crash-at", "GATEWAY_CRASH_AT", "", "TEST ONLY: SIGKILL self at this protocol step ("+strings.Join(delivery.CrashPoints, "|")+")")
	s.Int(&c.CrashAfterN, "crash-after-n", "GATEWAY_CRASH_AFTER_N", d.CrashAfterN, "TEST ONLY: crash the N-th time the step is reached")
}

// setDefaults fills the fields an in-process caller left zero (the local
// stack and the tests set only what they care about). From the command line
// every field already holds its flag value, and Validate refuses a zero or
// negative one there, naming its variable.
func (c *Config) setDefaults() {
	d := defaults()
	if len(c.Channels) == 0 {
		c.Channels = d.Channels
	}
	config.Default(&c.ProviderSpec, d.ProviderSpec)
	config.Default(&c.Workers, d.Workers)
	config.Default(&c.MaxAckPending, d.MaxAckPending)
	config.Default(&c.AckWait, d.AckWait)
	config.Default(&c.MaxAttempts, d.MaxAttempts)
	config.Default(&c.MaxBackoff, d.MaxBackoff)
	config.Default(&c.RetryDelay, d.RetryDelay)
	config.Default(&c.MarkerTTL, d.MarkerTTL)
	config.Default(&c.StopTimeout, d.StopTimeout)
	config.Default(&c.StatusTopic, d.StatusTopic)
	config.Default(&c.DefaultLocale, d.DefaultLocale)
	config.Default(&c.SMTP.Timeout, d.SMTP.Timeout)
	config.Default(&c.SMTP.TLS, d.SMTP.TLS)
	config.Default(&c.SMTP.Port, d.SMTP.Port)
	config.Default(&c.SMTP.Host, d.SMTP.Host)
	config.Default(&c.SMTP.Conns, c.Workers)
	config.Default(&c.CrashAfterN, d.CrashAfterN)
	if c.MessageIDDomain == "" {
		if a, err := mail.ParseAddress(c.SMTP.From); err == nil {
			_, c.MessageIDDomain, _ = strings.Cut(a.Address, "@")
		}
	}
}

// Policy is the retry schedule the settings describe.
func (c Config) Policy() retry.Policy {
	return retry.Policy{AckWait: c.AckWait, MaxAttempts: c.MaxAttempts, MaxBackoff: c.MaxBackoff, FirstRetry: c.RetryDelay}
}

// parseProviders parses ProviderSpec.
func parseProviders(spec string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range config.SplitList(spec) {
		ch, prov, ok := strings.Cut(item, "=")
		ch, prov = strings.TrimSpace(ch), strings.TrimSpace(prov)
		switch {
		case !ok || ch == "" || prov == "":
			return nil, fmt.Errorf("%q is not channel=provider", item)
		case !events.ValidChannel(ch):
			return nil, fmt.Errorf("%q: channel %q is not one of %v", item, ch, events.ChannelNames())
		case !slices.Contains(Providers[ch], prov):
			return nil, fmt.Errorf("%q: no provider %q for %s (have: %v)", item, prov, ch, Providers[ch])
		case out[ch] != "":
			return nil, fmt.Errorf("%q: channel %s given twice", item, ch)
		}
		out[ch] = prov
	}
	return out, nil
}

// Validate names every setting that is wrong. It loads the templates, so a
// template that does not parse or render is a configuration error naming
// the file.
func (c Config) Validate() error {
	var p config.Problems
	p.Add(c.Kafka.Validate())
	if !events.ValidRegion(c.Region) {
		p.Addf("REGION", "%q is not a region id (%s)", c.Region, events.RegionPattern)
	}
	providers, err := parseProviders(c.ProviderSpec)
	if err != nil {
		p.Addf("GATEWAY_PROVIDERS", "%v", err)
	}
	for _, ch := range c.Channels {
		switch {
		case !events.ValidChannel(ch):
			p.Addf("GATEWAY_CHANNELS", "%q is not one of %v", ch, events.ChannelNames())
		case err == nil && providers[ch] == "":
			p.Addf("GATEWAY_CHANNELS", "%s has no provider in GATEWAY_PROVIDERS (%q)", ch, c.ProviderSpec)
		}
	}
	if c.RedisURL == "" {
		p.Addf("REDIS_URL", "required")
	}
	if c.NATSURL == "" {
		p.Addf("NATS_URL", "required")
	}
	config.Positive(&p, "GATEWAY_WORKERS", c.Workers)
	config.Positive(&p, "GATEWAY_MAX_ACK_PENDING", c.MaxAckPending)
	if c.Workers > 0 && c.MaxAckPending > 0 && c.MaxAckPending < c.Workers {
		p.Addf("GATEWAY_MAX_ACK_PENDING", "%d is below GATEWAY_WORKERS %d: workers would idle", c.MaxAckPending, c.Workers)
	}
	config.Positive(&p, "GATEWAY_ACK_WAIT", c.AckWait)
	config.Positive(&p, "GATEWAY_MAX_ATTEMPTS", c.MaxAttempts)
	config.Positive(&p, "GATEWAY_RETRY_DELAY", c.RetryDelay)
	config.Positive(&p, "GATEWAY_MARKER_TTL", c.MarkerTTL)
	config.Positive(&p, "GATEWAY_STOP_TIMEOUT", c.StopTimeout)
	if c.MaxBackoff < c.AckWait {
		p.Addf("GATEWAY_MAX_BACKOFF", "%s is shorter than GATEWAY_ACK_WAIT %s", c.MaxBackoff, c.AckWait)
	}
	if c.MaxAttempts > events.MaxAttempt {
		p.Addf("GATEWAY_MAX_ATTEMPTS", "%d is above %d", c.MaxAttempts, events.MaxAttempt)
	}
	if c.StatusTopic == "" {
		p.Addf("DELIVERY_STATUS_TOPIC", "required")
	}
	if !localeOK(c.DefaultLocale) {
		p.Addf("GATEWAY_DEFAULT_LOCALE", "%q is not a BCP 47 locale such as en", c.DefaultLocale)
	} else if _, err := render.Load(c.TemplatesDir, c.DefaultLocale); err != nil {
		p.Addf("GATEWAY_TEMPLATES_DIR", "%v", err)
	}
	if providers[events.ChannelEmail] == email.ProviderName && slices.Contains(c.Channels, events.ChannelEmail) {
		c.validateSMTP(&p)
	}
	c.validateUnsubscribe(&p)
	if c.CrashAt != "" && !slices.Contains(delivery.CrashPoints, c.CrashAt) {
		p.Addf("GATEWAY_CRASH_AT", "%q is not one of %v", c.CrashAt, delivery.CrashPoints)
	}
	config.Positive(&p, "GATEWAY_CRASH_AFTER_N", c.CrashAfterN)
	return p.Err()
}

func (c Config) validateSMTP(p *config.Problems) {
	s := c.SMTP
	if s.Host == "" {
		p.Addf("SMTP_HOST", "required")
	}
	if s.Port < 1 || s.Port > 65535 {
		p.Addf("SMTP_PORT", "%d is not a TCP port", s.Port)
	}
	if !slices.Contains(email.TLSModes, s.TLS) {
		p.Addf("SMTP_TLS", "%q is not one of %v", s.TLS, email.TLSModes)
	}
	if s.Auth != "" && !slices.Contains(email.AuthMechanisms, s.Auth) {
		p.Addf("SMTP_AUTH", "%q is not one of %v", s.Auth, email.AuthMechanisms)
	}
	if s.Auth != "" && s.Username == "" {
		p.Addf("SMTP_USERNAME", "required with SMTP_AUTH=%s", s.Auth)
	}
	config.Positive(p, "SMTP_TIMEOUT", s.Timeout)
	if s.Timeout >= c.AckWait && c.AckWait > 0 {
		p.Addf("SMTP_TIMEOUT", "%s is not below GATEWAY_ACK_WAIT %s: a stuck send would outlive its claim", s.Timeout, c.AckWait)
	}
	config.NotNegative(p, "SMTP_CONNECTIONS", s.Conns) // 0: GATEWAY_WORKERS
	switch a, err := mail.ParseAddress(s.From); {
	case s.From == "":
		p.Addf("EMAIL_FROM", "required for the email channel")
	case err != nil:
		p.Addf("EMAIL_FROM", "%q is not an address: %v", s.From, err)
	case !strings.Contains(a.Address, "@"):
		p.Addf("EMAIL_FROM", "%q has no domain", s.From)
	}
	// Empty takes EMAIL_FROM's domain.
	if strings.ContainsAny(c.MessageIDDomain, "<>@ \t\r\n") {
		p.Addf("EMAIL_MESSAGE_ID_DOMAIN", "%q is not a domain", c.MessageIDDomain)
	}
}

func (c Config) validateUnsubscribe(p *config.Problems) {
	switch {
	case c.UnsubscribeKeys == "" && c.UnsubscribeBaseURL == "":
		return
	case c.UnsubscribeKeys == "":
		p.Addf("UNSUBSCRIBE_KEYS", "required with GATEWAY_UNSUBSCRIBE_BASE_URL")
	case c.UnsubscribeBaseURL == "":
		p.Addf("GATEWAY_UNSUBSCRIBE_BASE_URL", "required with UNSUBSCRIBE_KEYS")
	}
	if c.UnsubscribeKeys != "" {
		if _, err := unsubscribe.ParseKeys(c.UnsubscribeKeys); err != nil {
			p.Addf("UNSUBSCRIBE_KEYS", "%v", err)
		}
	}
	if c.UnsubscribeBaseURL != "" {
		u, err := url.Parse(c.UnsubscribeBaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			p.Addf("GATEWAY_UNSUBSCRIBE_BASE_URL", "%q is not an http(s) URL without query or fragment, such as https://shop.example/wishlist", c.UnsubscribeBaseURL)
		}
	}
}

var localeRE = regexp.MustCompile(events.LocalePattern)

func localeOK(s string) bool { return localeRE.MatchString(s) }

func (c Config) String() string {
	return fmt.Sprintf("gateway %s channels %v", c.Region, c.Channels)
}
