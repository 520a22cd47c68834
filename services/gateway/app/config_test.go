package app_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"backinstock/services/gateway/app"
	"backinstock/services/gateway/internal/providertest"
	"backinstock/services/gateway/internal/webpush"
	"backinstock/shared/config"
)

// bind parses args with env (KEY=value pairs) set, as the command line does.
func bind(t *testing.T, env map[string]string, args ...string) (app.Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c app.Config
	s := config.NewSet("gateway run")
	c.Bind(s)
	if err := s.Parse(args); err != nil {
		return c, err
	}
	return c, c.Validate()
}

func TestDefaultsFromTheCommandLineAreValid(t *testing.T) {
	c, err := bind(t, map[string]string{"REGION": "us-east-1", "EMAIL_FROM": "Shop <shop@shop.example>"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.Channels, []string{"email"}) || c.ProviderSpec != "email=smtp" || c.SMTP.TLS != "starttls" || c.SMTP.Port != 587 {
		t.Errorf("defaults %+v", c)
	}
	if bo := c.Policy().BackOff(); len(bo) != 6 || bo[0].String() != "30s" || bo[5].String() != "10m0s" {
		t.Errorf("back-off %v", bo)
	}
}

func TestPushSettingsFromTheCommandLineAreValid(t *testing.T) {
	f := providertest.NewFCM(t)
	pub, priv, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	c, err := bind(t, map[string]string{"REGION": "us-east-1", "GATEWAY_CHANNELS": "app,web", "GATEWAY_PROVIDERS": "app=fcm,web=webpush",
		"FCM_CREDENTIALS_FILE": f.CredentialsFile, "VAPID_PUBLIC_KEY": pub, "VAPID_PRIVATE_KEY": priv, "VAPID_SUBJECT": "mailto:push@shop.example",
		"WISHLIST_API_URL": "http://127.0.0.1:8081", "WISHLIST_API_TOKEN": "t"})
	if err != nil {
		t.Fatal(err)
	}
	if c.FCM.BaseURL != "https://fcm.googleapis.com" || c.WebPush.TTL.String() != "24h0m0s" || c.WebPush.Urgency != "normal" {
		t.Errorf("defaults %+v %+v", c.FCM, c.WebPush)
	}
}

// TestSMSSettings: an sms deployment on twilio with a rate limit and
// status callbacks, from the environment.
func TestSMSSettings(t *testing.T) {
	c, err := bind(t, map[string]string{
		"REGION": "us-east-1", "GATEWAY_CHANNELS": "email,sms", "GATEWAY_PROVIDERS": "email=smtp,sms=twilio", "EMAIL_FROM": "shop@shop.example",
		"TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef", "TWILIO_API_KEY_SID": "SK0123456789abcdef0123456789abcdef",
		"TWILIO_API_KEY_SECRET": "secret", "TWILIO_AUTH_TOKEN": "token", "TWILIO_MESSAGING_SERVICE_SID": "MG0123456789abcdef0123456789abcdef",
		"GATEWAY_PUBLIC_URL": "https://hooks.shop.example/gateway/us-east-1", "GATEWAY_RATE_LIMITS": "sms=50/s,smtp=600/m", // a channel means its provider
	})
	if err != nil {
		t.Fatal(err)
	}
	if c.SMS.BaseURL != "https://api.twilio.com" || c.SMS.Timeout.String() != "10s" || c.RateLimits != "sms=50/s,smtp=600/m" {
		t.Errorf("config %+v", c)
	}
}

// TestBadSettingsAreNamed: each bad setting is refused with its variable's
// name, all of them at once.
func TestBadSettingsAreNamed(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"region", map[string]string{"REGION": "US East"}, []string{`REGION: "US East" is not a region id`}},
		{"channel without provider", map[string]string{"GATEWAY_CHANNELS": "email,sms"}, []string{`GATEWAY_CHANNELS: sms has no provider in GATEWAY_PROVIDERS`}},
		{"unknown channel", map[string]string{"GATEWAY_CHANNELS": "fax"}, []string{`GATEWAY_CHANNELS: "fax" is not one of`}},
		{"unknown provider", map[string]string{"GATEWAY_PROVIDERS": "email=sendgrid"}, []string{`GATEWAY_PROVIDERS: "email=sendgrid": no provider "sendgrid" for email`}},
		{"provider spec", map[string]string{"GATEWAY_PROVIDERS": "email"}, []string{`GATEWAY_PROVIDERS: "email" is not channel=provider`}},
		{"workers", map[string]string{"GATEWAY_WORKERS": "0"}, []string{"GATEWAY_WORKERS: must be positive"}},
		{"ack pending below workers", map[string]string{"GATEWAY_WORKERS": "32", "GATEWAY_MAX_ACK_PENDING": "8"}, []string{"GATEWAY_MAX_ACK_PENDING: 8 is below GATEWAY_WORKERS 32"}},
		{"back-off below ack wait", map[string]string{"GATEWAY_MAX_BACKOFF": "10s"}, []string{"GATEWAY_MAX_BACKOFF: 10s is shorter than GATEWAY_ACK_WAIT 30s"}},
		{"smtp timeout", map[string]string{"SMTP_TIMEOUT": "1m"}, []string{"SMTP_TIMEOUT: 1m0s is not below GATEWAY_ACK_WAIT 30s"}},
		{"smtp tls", map[string]string{"SMTP_TLS": "ssl"}, []string{`SMTP_TLS: "ssl" is not one of [starttls implicit none]`}},
		{"smtp auth", map[string]string{"SMTP_AUTH": "KERBEROS", "SMTP_USERNAME": "u"}, []string{`SMTP_AUTH: "KERBEROS" is not one of`}},
		{"smtp auth without user", map[string]string{"SMTP_AUTH": "PLAIN"}, []string{"SMTP_USERNAME: required with SMTP_AUTH=PLAIN"}},
		{"smtp port", map[string]string{"SMTP_PORT": "70000"}, []string{"SMTP_PORT: 70000 is not a TCP port"}},
		{"from missing", map[string]string{"EMAIL_FROM": ""}, []string{"EMAIL_FROM: required for the email channel"}},
		{"from malformed", map[string]string{"EMAIL_FROM": "shop at example"}, []string{`EMAIL_FROM: "shop at example" is not an address`}},
		{"message id domain", map[string]string{"EMAIL_MESSAGE_ID_DOMAIN": "a@b"}, []string{`EMAIL_MESSAGE_ID_DOMAIN: "a@b" is not a domain`}},
		{"unsubscribe keys without base", map[string]string{"UNSUBSCRIBE_KEYS": "k1:0123456789abcdef0123456789abcdef"}, []string{"GATEWAY_UNSUBSCRIBE_BASE_URL: required with UNSUBSCRIBE_KEYS"}},
		{"unsubscribe base without keys", map[string]string{"GATEWAY_UNSUBSCRIBE_BASE_URL": "https://shop.example/w"}, []string{"UNSUBSCRIBE_KEYS: required with GATEWAY_UNSUBSCRIBE_BASE_URL"}},
		{"unsubscribe short secret", map[string]string{"UNSUBSCRIBE_KEYS": "k1:short", "GATEWAY_UNSUBSCRIBE_BASE_URL": "https://shop.example/w"}, []string{"UNSUBSCRIBE_KEYS: key 1 (k1): secret must be at least 32 bytes"}},
		{"unsubscribe base not a URL", map[string]string{"UNSUBSCRIBE_KEYS": "k1:0123456789abcdef0123456789abcdef", "GATEWAY_UNSUBSCRIBE_BASE_URL": "shop.example?x=1"}, []string{`GATEWAY_UNSUBSCRIBE_BASE_URL: "shop.example?x=1" is not an http(s) URL`}},
		{"click keys without base", map[string]string{"CLICK_KEYS": "c1:0123456789abcdef0123456789abcdef"}, []string{"ENGAGEMENT_BASE_URL: required with CLICK_KEYS"}},
		{"click base without keys", map[string]string{"ENGAGEMENT_BASE_URL": "https://e.shop.example"}, []string{"CLICK_KEYS: required with ENGAGEMENT_BASE_URL"}},
		{"click short secret", map[string]string{"CLICK_KEYS": "c1:short", "ENGAGEMENT_BASE_URL": "https://e.shop.example"}, []string{"CLICK_KEYS: key 1 (c1): secret must be at least 32 bytes"}},
		{"click base not a URL", map[string]string{"CLICK_KEYS": "c1:0123456789abcdef0123456789abcdef", "ENGAGEMENT_BASE_URL": "e.shop.example"}, []string{`ENGAGEMENT_BASE_URL: "e.shop.example" is not an http(s) URL`}},
		{"click link ttl", map[string]string{"CLICK_LINK_TTL": "10m"}, []string{"CLICK_LINK_TTL: must be at least 1h, got 10m0s"}},
		{"default locale", map[string]string{"GATEWAY_DEFAULT_LOCALE": "english"}, []string{`GATEWAY_DEFAULT_LOCALE: "english" is not a BCP 47 locale`}},
		{"default locale without templates", map[string]string{"GATEWAY_DEFAULT_LOCALE": "pt"}, []string{`GATEWAY_TEMPLATES_DIR: default locale "pt" has no email templates`}},
		{"push without settings", map[string]string{"GATEWAY_CHANNELS": "app,web", "GATEWAY_PROVIDERS": "app=fcm,web=webpush"},
			[]string{"FCM_CREDENTIALS_FILE: required for app=fcm", "VAPID_PRIVATE_KEY: VAPID_PRIVATE_KEY and VAPID_PUBLIC_KEY are required", "VAPID_SUBJECT:", "WISHLIST_API_URL:", "WISHLIST_API_TOKEN: required"}},
		{"push timeouts", map[string]string{"GATEWAY_CHANNELS": "app,web", "GATEWAY_PROVIDERS": "app=fcm,web=webpush", "FCM_TIMEOUT": "1m", "WEBPUSH_TIMEOUT": "30s", "WEBPUSH_URGENCY": "asap"},
			[]string{"FCM_TIMEOUT: 1m0s is not below GATEWAY_ACK_WAIT", "WEBPUSH_TIMEOUT: 30s is not below", `WEBPUSH_URGENCY: "asap" is not one of`}},
		{"rate limits spec", map[string]string{"GATEWAY_RATE_LIMITS": "twilio=50"}, []string{`GATEWAY_RATE_LIMITS: "twilio=50": "50" has no /unit`}},
		{"rate limits of nothing", map[string]string{"GATEWAY_RATE_LIMITS": "twillio=50/s"}, []string{`GATEWAY_RATE_LIMITS: "twillio" is neither a provider (have: [fcm smtp twilio webhook webpush]) nor a channel`}},
		{"rate limit of a channel without provider", map[string]string{"GATEWAY_RATE_LIMITS": "sms=50/s"}, []string{`GATEWAY_RATE_LIMITS: "sms": channel sms has no provider in GATEWAY_PROVIDERS`}},
		{"rate limit twice", map[string]string{"GATEWAY_PROVIDERS": "email=smtp", "GATEWAY_RATE_LIMITS": "email=10/s,smtp=20/s"}, []string{`GATEWAY_RATE_LIMITS: "smtp": provider smtp is limited twice`}},
		{"sms needs twilio settings", map[string]string{"GATEWAY_CHANNELS": "sms", "GATEWAY_PROVIDERS": "sms=twilio"},
			[]string{"TWILIO_ACCOUNT_SID: required", "TWILIO_AUTH_TOKEN: required", "TWILIO_FROM: required"}},
		{"sms timeout", map[string]string{"GATEWAY_CHANNELS": "sms", "GATEWAY_PROVIDERS": "sms=twilio", "TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
			"TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+14155550100", "SMS_TIMEOUT": "45s"}, []string{"SMS_TIMEOUT: 45s is not below GATEWAY_ACK_WAIT 30s"}},
		{"public url", map[string]string{"GATEWAY_CHANNELS": "sms", "GATEWAY_PROVIDERS": "sms=twilio", "TWILIO_ACCOUNT_SID": "AC0123456789abcdef0123456789abcdef",
			"TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM": "+14155550100", "GATEWAY_PUBLIC_URL": "hooks.shop.example"}, []string{`GATEWAY_PUBLIC_URL: "hooks.shop.example" is not an http(s) base URL`}},
		{"several at once", map[string]string{"REGION": "", "SMTP_TLS": "x", "GATEWAY_WORKERS": "-1"},
			[]string{"REGION:", "SMTP_TLS:", "GATEWAY_WORKERS:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{"REGION": "us-east-1", "EMAIL_FROM": "shop@shop.example"}
			for k, v := range c.env {
				env[k] = v
			}
			_, err := bind(t, env)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

func TestBrokenTemplateIsAConfigurationErrorNamingTheFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "email", "en", "subject.txt")
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("{{.Nope}}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := bind(t, map[string]string{"REGION": "us-east-1", "EMAIL_FROM": "shop@shop.example", "GATEWAY_TEMPLATES_DIR": dir})
	if err == nil || !strings.Contains(err.Error(), "GATEWAY_TEMPLATES_DIR: template "+file) || !strings.Contains(err.Error(), "can't evaluate field Nope") {
		t.Errorf("error %v", err)
	}
}

// TestReadmeDocumentsEverySetting: the README's configuration table lists
// exactly the variables `gateway run` binds (besides the Kafka ones, which
// the top-level README documents for every service).
func TestReadmeDocumentsEverySetting(t *testing.T) {
	var c app.Config
	s := config.NewSet("gateway run")
	c.Bind(s)
	bound := map[string]bool{}
	re := regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)`)
	s.FS.VisitAll(func(f *flag.Flag) {
		if m := re.FindStringSubmatch(f.Usage); m != nil && !strings.HasPrefix(m[1], "KAFKA_") {
			bound[m[1]] = true
		}
	})
	bound["LOG_LEVEL"] = true // bound by shared/cli for every command
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| (`[A-Z][A-Z0-9_]*`(?:, `[A-Z][A-Z0-9_]*`)*) \\|").FindAllStringSubmatch(string(readme), -1) {
		for _, k := range strings.Split(m[1], ", ") {
			if k = strings.Trim(k, "`"); !strings.HasPrefix(k, "KAFKA_") {
				documented[k] = true
			}
		}
	}
	for k := range bound {
		if !documented[k] {
			t.Errorf("README lacks %s", k)
		}
	}
	for k := range documented {
		if !bound[k] {
			t.Errorf("README documents %s, which gateway run does not bind", k)
		}
	}
}
