// Package app runs the gateway's `run` command from a Config. It is public
// so the local stack can run one gateway per region in-process with its own
// Prometheus registry.
package app

import (
	"fmt"
	"maps"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"backinstock/services/gateway/internal/delivery"
	"backinstock/services/gateway/internal/devices"
	"backinstock/services/gateway/internal/email"
	"backinstock/services/gateway/internal/fcm"
	"backinstock/services/gateway/internal/ratelimit"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/services/gateway/internal/sms"
	"backinstock/services/gateway/internal/webhook"
	"backinstock/services/gateway/internal/webpush"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/clicklink"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// Providers the gateway has, per channel; the webhook serves any channel.
var Providers = map[string][]string{
	events.ChannelEmail: {email.ProviderName, webhook.ProviderName},
	events.ChannelSMS:   {sms.ProviderName, webhook.ProviderName},
	events.ChannelApp:   {fcm.ProviderName, webhook.ProviderName},
	events.ChannelWeb:   {webpush.ProviderName, webhook.ProviderName},
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
	// APIToken is the bearer token of the admin routes (pause/resume);
	// without one they answer 503.
	APIToken string

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
	// ClickKeys sign the tracked links (CLICK_KEYS, the engagement
	// service's value: kid:secret,..., the first signs);
	// EngagementBaseURL is the engagement service's public address the
	// links point at; ClickLinkTTL is how long a link works. Keys and base
	// URL both or neither: without them messages link to the product
	// itself.
	ClickKeys         string
	EngagementBaseURL string
	ClickLinkTTL      time.Duration

	// Webhook configures the webhook provider (WEBHOOK_*); Conns follows
	// Workers.
	Webhook webhook.Config

	// CrashAt and CrashAfterN are a TEST-ONLY hook, in builds with
	// -tags crashhook only: at the CrashAfterN-th time the protocol reaches
	// step CrashAt (delivery.CrashPoints) the process SIGKILLs itself. Off
	// when empty; a build without the hook refuses a CrashAt.
	CrashAt     string
	CrashAfterN int
	// Crash, when set, replaces CrashAt in-process (tests): it is called at
	// every crash point and returns true to abandon the message there.
	Crash func(point string) bool

	// FCM configures the app channel's fcm provider, WebPush the web
	// channel's webpush provider.
	FCM     fcm.Config
	WebPush webpush.Config
	// Wishlist is the wishlist API the push providers remove dead devices
	// through (required with app or web).
	Wishlist devices.Config
	// SMS configures the twilio provider (PublicURL comes from PublicURL).
	SMS sms.Config
	// PublicURL is the gateway's public base URL (GATEWAY_PUBLIC_URL),
	// which providers' callbacks reach it at.
	PublicURL string
	// RateLimits are the providers' rate limits shared by every replica
	// of the region (GATEWAY_RATE_LIMITS, "twilio=50/s,...": package
	// ratelimit).
	RateLimits string

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
		SMS:         sms.Config{BaseURL: sms.DefaultBaseURL, Timeout: 10 * time.Second},
		Webhook:     webhook.Config{Timeout: 10 * time.Second},
		CrashAfterN: 1,
		FCM:         fcm.Config{BaseURL: fcm.DefaultBaseURL, Timeout: 10 * time.Second},
		// A day: a restock alert read later than that is about stock that
		// may be gone again.
		WebPush:  webpush.Config{TTL: 24 * time.Hour, Urgency: "normal", Timeout: 10 * time.Second},
		Wishlist: devices.Config{Timeout: 5 * time.Second},
		// A restock alert clicked a month later is about stock long gone;
		// the link then shows the engagement service's 404 page.
		ClickLinkTTL: 30 * 24 * time.Hour,
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
	s.String(&c.ProviderSpec, "providers", "GATEWAY_PROVIDERS", d.ProviderSpec, `provider per channel, "email=smtp,app=fcm,web=webpush,sms=webhook"`)
	s.String(&c.HTTPAddr, "http-addr", "HTTP_ADDR", d.HTTPAddr, "HTTP listen address (health, readiness, metrics, admin)")
	s.String(&c.APIToken, "api-token", "API_TOKEN", "", "bearer token of the admin (pause/resume) routes; empty: they answer 503")
	s.Int(&c.Workers, "workers", "GATEWAY_WORKERS", d.Workers, "notifications of one channel this replica sends at once")
	s.Int(&c.MaxAckPending, "max-ack-pending", "GATEWAY_MAX_ACK_PENDING", d.MaxAckPending, "notifications of one channel out at once over all replicas (sending or waiting to retry): the backpressure bound")
	s.Duration(&c.AckWait, "ack-wait", "GATEWAY_ACK_WAIT", d.AckWait, "how long a replica may hold a notification without a sign of life before JetStream hands it to another (doubles per redelivery)")
	s.Int(&c.MaxAttempts, "max-attempts", "GATEWAY_MAX_ATTEMPTS", d.MaxAttempts, "deliveries of one notification before a transient failure is final")
	s.Duration(&c.MaxBackoff, "max-backoff", "GATEWAY_MAX_BACKOFF", d.MaxBackoff, "cap of the redelivery back-off")
	s.Duration(&c.RetryDelay, "retry-delay", "GATEWAY_RETRY_DELAY", d.RetryDelay, "delay after the first transient failure (jittered; later ones add the back-off's growth)")
	s.Duration(&c.MarkerTTL, "marker-ttl", "GATEWAY_MARKER_TTL", d.MarkerTTL, "lifetime of the Redis delivered markers (at least the edge stream's max age)")
	s.Duration(&c.StopTimeout, "stop-timeout", "GATEWAY_STOP_TIMEOUT", d.StopTimeout, "how long a stop waits for the sends in flight to finish and be acknowledged")
	s.String(&c.StatusTopic, "status-topic", "DELIVERY_STATUS_TOPIC", d.StatusTopic, "topic of the delivery receipts")
	s.String(&c.TemplatesDir, "templates-dir", "GATEWAY_TEMPLATES_DIR", "", "directory of templates overriding the built-in ones (email/<locale>/{subject.txt,body.html,body.txt}, sms/<locale>/body.txt, push/<locale>/{title.txt,body.txt})")
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
	s.String(&c.ClickKeys, "click-keys", "CLICK_KEYS", "", "keys of the tracked links, kid:secret,... (the engagement service's value; the first signs); with ENGAGEMENT_BASE_URL every message links to the product through it")
	s.String(&c.EngagementBaseURL, "engagement-base-url", "ENGAGEMENT_BASE_URL", "", "public base URL of the engagement service the tracked links point at (<url>/c/<token>; with CLICK_KEYS)")
	s.Duration(&c.ClickLinkTTL, "click-link-ttl", "CLICK_LINK_TTL", d.ClickLinkTTL, "how long a tracked link works after the message is rendered")
	s.String(&c.SMS.BaseURL, "twilio-base-url", "TWILIO_BASE_URL", d.SMS.BaseURL, "base URL of Twilio's API (or a service of its shape)")
	s.String(&c.SMS.AccountSID, "twilio-account-sid", "TWILIO_ACCOUNT_SID", "", "Twilio account SID, AC... (required for sms=twilio)")
	s.String(&c.SMS.AuthToken, "twilio-auth-token", "TWILIO_AUTH_TOKEN", "", "Twilio auth token: the API password unless an API key is given; verifies the status callbacks' signatures")
	s.String(&c.SMS.APIKeySID, "twilio-api-key-sid", "TWILIO_API_KEY_SID", "", "Twilio API key SID, SK... (with TWILIO_API_KEY_SECRET: the API's credentials instead of the auth token)")
	s.String(&c.SMS.APIKeySecret, "twilio-api-key-secret", "TWILIO_API_KEY_SECRET", "", "Twilio API key secret")
	s.String(&c.SMS.From, "twilio-from", "TWILIO_FROM", "", "sender: an E.164 number, short code or alphanumeric sender id (or TWILIO_MESSAGING_SERVICE_SID)")
	s.String(&c.SMS.MessagingServiceSID, "twilio-messaging-service-sid", "TWILIO_MESSAGING_SERVICE_SID", "", "Twilio Messaging Service SID, MG... (instead of TWILIO_FROM)")
	s.Duration(&c.SMS.Timeout, "sms-timeout", "SMS_TIMEOUT", d.SMS.Timeout, "timeout of one call to the SMS provider's API (below GATEWAY_ACK_WAIT)")
	s.String(&c.PublicURL, "public-url", "GATEWAY_PUBLIC_URL", "", "public base URL of this gateway, where providers' callbacks reach it (Twilio's StatusCallback: <url>/v1/sms/status); empty: no status callbacks")
	s.String(&c.RateLimits, "rate-limits", "GATEWAY_RATE_LIMITS", "", `provider rate limits shared by the region's replicas, "twilio=50/s,fcm=600/m" or by channel "sms=50/s" (units s, m, h)`)
	s.String(&c.Webhook.URL, "webhook-url", "WEBHOOK_URL", "", "the shop's endpoint the webhook provider POSTs to (required for a channel with it)")
	s.List(&c.Webhook.Secrets, "webhook-secrets", "WEBHOOK_SECRETS", nil, "Standard Webhooks signing secrets, whsec_...; each request is signed with every one (rotation)")
	s.Duration(&c.Webhook.Timeout, "webhook-timeout", "WEBHOOK_TIMEOUT", d.Webhook.Timeout, "timeout of one webhook request (below GATEWAY_ACK_WAIT)")
	s.String(&c.FCM.BaseURL, "fcm-base-url", "FCM_BASE_URL", d.FCM.BaseURL, "base URL of the FCM HTTP v1 API")
	s.String(&c.FCM.CredentialsFile, "fcm-credentials-file", "FCM_CREDENTIALS_FILE", "", "service account JSON key of the Firebase project (required for app=fcm); its token_uri is where access tokens come from")
	s.String(&c.FCM.ProjectID, "fcm-project-id", "FCM_PROJECT_ID", "", "Firebase project id (default: the key's project_id)")
	s.Duration(&c.FCM.Timeout, "fcm-timeout", "FCM_TIMEOUT", d.FCM.Timeout, "timeout of one FCM call, the token exchange included (below GATEWAY_ACK_WAIT)")
	s.String(&c.WebPush.PublicKey, "vapid-public-key", "VAPID_PUBLIC_KEY", "", "VAPID public key, base64url (the storefront's applicationServerKey; gateway vapid-keys makes a pair)")
	s.String(&c.WebPush.PrivateKey, "vapid-private-key", "VAPID_PRIVATE_KEY", "", "VAPID private key, base64url (required for web=webpush)")
	s.String(&c.WebPush.Subject, "vapid-subject", "VAPID_SUBJECT", "", "VAPID contact, mailto:push@shop.example or an https: URL (required for web=webpush)")
	s.Duration(&c.WebPush.TTL, "webpush-ttl", "WEBPUSH_TTL", d.WebPush.TTL, "how long a push service keeps a message for an offline browser")
	s.String(&c.WebPush.Urgency, "webpush-urgency", "WEBPUSH_URGENCY", d.WebPush.Urgency, "Urgency of web pushes: "+strings.Join(webpush.Urgencies, ", "))
	s.Duration(&c.WebPush.Timeout, "webpush-timeout", "WEBPUSH_TIMEOUT", d.WebPush.Timeout, "timeout of one push service call (below GATEWAY_ACK_WAIT)")
	s.String(&c.Wishlist.URL, "wishlist-api-url", "WISHLIST_API_URL", "", "wishlist API base URL, where dead push devices are removed (required for app and web)")
	s.String(&c.Wishlist.Token, "wishlist-api-token", "WISHLIST_API_TOKEN", "", "bearer token of the wishlist API (its API_TOKEN)")
	s.Duration(&c.Wishlist.Timeout, "wishlist-api-timeout", "WISHLIST_API_TIMEOUT", d.Wishlist.Timeout, "timeout of one device removal")
	c.bindCrash(s, d)
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
	config.Default(&c.SMS.BaseURL, d.SMS.BaseURL)
	config.Default(&c.SMS.Timeout, d.SMS.Timeout)
	config.Default(&c.SMS.Conns, c.Workers)
	config.Default(&c.CrashAfterN, d.CrashAfterN)
	config.Default(&c.Webhook.Timeout, d.Webhook.Timeout)
	config.Default(&c.Webhook.Conns, c.Workers)
	config.Default(&c.FCM.BaseURL, d.FCM.BaseURL)
	config.Default(&c.FCM.Timeout, d.FCM.Timeout)
	config.Default(&c.WebPush.TTL, d.WebPush.TTL)
	config.Default(&c.WebPush.Urgency, d.WebPush.Urgency)
	config.Default(&c.WebPush.Timeout, d.WebPush.Timeout)
	config.Default(&c.Wishlist.Timeout, d.Wishlist.Timeout)
	config.Default(&c.ClickLinkTTL, d.ClickLinkTTL)
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
	if providers[events.ChannelSMS] == sms.ProviderName && slices.Contains(c.Channels, events.ChannelSMS) {
		p.Add(c.smsConfig().Validate(c.AckWait))
	}
	if _, err := c.providerLimits(providers); err != nil {
		p.Addf("GATEWAY_RATE_LIMITS", "%v", err)
	}
	if usesProvider(providers, c.Channels, webhook.ProviderName) {
		p.Add(c.Webhook.Validate())
		if c.Webhook.Timeout >= c.AckWait && c.AckWait > 0 {
			p.Addf("WEBHOOK_TIMEOUT", "%s is not below GATEWAY_ACK_WAIT %s: a stuck send would outlive its claim", c.Webhook.Timeout, c.AckWait)
		}
	}
	c.validatePush(&p, providers)
	c.validateUnsubscribe(&p)
	c.validateClicks(&p)
	if c.CrashAt != "" && !crashHooks {
		p.Addf("GATEWAY_CRASH_AT", "this build has no crash hook (the crash tests build with -tags crashhook)")
	} else if c.CrashAt != "" && !slices.Contains(delivery.CrashPoints, c.CrashAt) {
		p.Addf("GATEWAY_CRASH_AT", "%q is not one of %v", c.CrashAt, delivery.CrashPoints)
	}
	if crashHooks { // the setting exists in crash-test builds only
		config.Positive(&p, "GATEWAY_CRASH_AFTER_N", c.CrashAfterN)
	}
	return p.Err()
}

// usesProvider reports whether one of channels is configured with provider.
func usesProvider(providers map[string]string, channels []string, provider string) bool {
	for _, ch := range channels {
		if providers[ch] == provider {
			return true
		}
	}
	return false
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

// serves reports whether the deployment delivers ch with provider.
func (c Config) serves(providers map[string]string, ch, provider string) bool {
	return providers[ch] == provider && slices.Contains(c.Channels, ch)
}

func (c Config) validatePush(p *config.Problems, providers map[string]string) {
	app, web := c.serves(providers, events.ChannelApp, fcm.ProviderName), c.serves(providers, events.ChannelWeb, webpush.ProviderName)
	if app {
		p.Add(c.FCM.Validate(c.AckWait))
	}
	if web {
		p.Add(c.WebPush.Validate(c.AckWait))
	}
	if app || web {
		p.Add(c.Wishlist.Validate())
	}
}

// smsConfig is the twilio provider's configuration with the gateway's
// public URL.
func (c Config) smsConfig() sms.Config {
	s := c.SMS
	s.PublicURL = c.PublicURL
	return s
}

// providerLimits parses GATEWAY_RATE_LIMITS into limits per provider.
// A key is a provider name (twilio=50/s) or, for convenience, a channel
// (sms=50/s), which means that channel's provider in this deployment; the
// limiter is keyed by the provider either way, so every replica shares it.
// A key that is neither, or a provider limited twice, is refused (a typo
// would otherwise leave a provider unlimited without a word).
func (c Config) providerLimits(providers map[string]string) (map[string]ratelimit.Limit, error) {
	limits, err := ratelimit.Parse(c.RateLimits)
	if err != nil {
		return nil, err
	}
	var known []string
	for _, provs := range Providers {
		known = append(known, provs...)
	}
	slices.Sort(known)
	known = slices.Compact(known)
	out := map[string]ratelimit.Limit{}
	for _, name := range slices.Sorted(maps.Keys(limits)) {
		prov := name
		if events.ValidChannel(name) {
			if prov = providers[name]; prov == "" {
				return nil, fmt.Errorf("%q: channel %s has no provider in GATEWAY_PROVIDERS", name, name)
			}
		} else if !slices.Contains(known, name) {
			return nil, fmt.Errorf("%q is neither a provider (have: %v) nor a channel (%v)", name, known, events.ChannelNames())
		}
		if _, dup := out[prov]; dup {
			return nil, fmt.Errorf("%q: provider %s is limited twice (by its name and by its channel)", name, prov)
		}
		out[prov] = limits[name]
	}
	return out, nil
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

func (c Config) validateClicks(p *config.Problems) {
	if c.ClickLinkTTL < time.Hour {
		p.Addf("CLICK_LINK_TTL", "must be at least 1h, got %s", c.ClickLinkTTL)
	}
	switch {
	case c.ClickKeys == "" && c.EngagementBaseURL == "":
		return
	case c.ClickKeys == "":
		p.Addf("CLICK_KEYS", "required with ENGAGEMENT_BASE_URL")
	case c.EngagementBaseURL == "":
		p.Addf("ENGAGEMENT_BASE_URL", "required with CLICK_KEYS")
	}
	if c.ClickKeys != "" {
		if _, err := clicklink.ParseKeys(c.ClickKeys); err != nil {
			p.Addf("CLICK_KEYS", "%v", err)
		}
	}
	if c.EngagementBaseURL != "" {
		u, err := url.Parse(c.EngagementBaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			p.Addf("ENGAGEMENT_BASE_URL", "%q is not an http(s) URL without query or fragment, such as https://e.shop.example", c.EngagementBaseURL)
		}
	}
}

var localeRE = regexp.MustCompile(events.LocalePattern)

func localeOK(s string) bool { return localeRE.MatchString(s) }

func (c Config) String() string {
	return fmt.Sprintf("gateway %s channels %v", c.Region, c.Channels)
}
