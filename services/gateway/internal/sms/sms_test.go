package sms_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"backinstock/services/gateway/internal/delivery"
	"backinstock/services/gateway/internal/providertest"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/services/gateway/internal/sms"
	"backinstock/topics/events"
)

// TestSignatureTwilioVector: the example Twilio's own libraries test
// their validators with (auth token 12345).
func TestSignatureTwilioVector(t *testing.T) {
	form := url.Values{
		"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675309"}, "Digits": {"1234"},
		"From": {"+14158675309"}, "To": {"+18005551212"},
	}
	const u, want = "https://mycompany.com/myapp.php?foo=1&bar=2", "RSOYDt4T1cUTdK1PDd93/VVr8B8="
	if got := sms.Signature("12345", u, form); got != want {
		t.Errorf("Signature = %s, want %s", got, want)
	}
	// The test server's signer is written separately; they must agree.
	if got := providertest.TwilioSignature("12345", u, form); got != want {
		t.Errorf("providertest.TwilioSignature = %s, want %s", got, want)
	}
	form.Add("Digits", "0000")
	if sms.Signature("12345", u, form) != providertest.TwilioSignature("12345", u, form) {
		t.Error("a repeated parameter signs differently")
	}
}

const (
	sid     = providertest.TestAccountSID
	token   = providertest.TestAuthToken
	keySID  = "SK0123456789abcdef0123456789abcdef"
	service = "MG0123456789abcdef0123456789abcdef"
)

func TestConfigValidate(t *testing.T) {
	good := sms.Config{BaseURL: sms.DefaultBaseURL, AccountSID: sid, AuthToken: token, From: "+14155550100", Timeout: 10 * time.Second}
	cases := []struct {
		name string
		mut  func(*sms.Config)
		want string // "" valid
	}{
		{"valid", func(*sms.Config) {}, ""},
		{"messaging service", func(c *sms.Config) { c.From, c.MessagingServiceSID = "", service }, ""},
		{"api key", func(c *sms.Config) { c.AuthToken, c.APIKeySID, c.APIKeySecret = "", keySID, "s3cret" }, ""},
		{"short code", func(c *sms.Config) { c.From = "74652" }, ""},
		{"alphanumeric sender", func(c *sms.Config) { c.From = "Shop" }, ""},
		{"public url", func(c *sms.Config) { c.PublicURL = "https://hooks.shop.example/gw" }, ""},
		{"base url", func(c *sms.Config) { c.BaseURL = "api.twilio.com" }, "TWILIO_BASE_URL"},
		{"no account", func(c *sms.Config) { c.AccountSID = "" }, "TWILIO_ACCOUNT_SID: required"},
		{"bad account", func(c *sms.Config) { c.AccountSID = "AC123" }, "TWILIO_ACCOUNT_SID"},
		{"no credentials", func(c *sms.Config) { c.AuthToken = "" }, "TWILIO_AUTH_TOKEN: required"},
		{"key without secret", func(c *sms.Config) { c.APIKeySID = keySID }, "TWILIO_API_KEY_SECRET"},
		{"secret without key", func(c *sms.Config) { c.APIKeySecret = "x" }, "TWILIO_API_KEY_SID"},
		{"bad key sid", func(c *sms.Config) { c.APIKeySID, c.APIKeySecret = "SKnope", "x" }, "TWILIO_API_KEY_SID"},
		{"no sender", func(c *sms.Config) { c.From = "" }, "TWILIO_FROM: required"},
		{"two senders", func(c *sms.Config) { c.MessagingServiceSID = service }, "not both"},
		{"bad from", func(c *sms.Config) { c.From = "0151-123" }, "TWILIO_FROM"},
		{"alphanumeric too long", func(c *sms.Config) { c.From = "TheShopExample" }, "TWILIO_FROM"},
		{"bad service", func(c *sms.Config) { c.From, c.MessagingServiceSID = "", "MG1" }, "TWILIO_MESSAGING_SERVICE_SID"},
		{"public url with slash", func(c *sms.Config) { c.PublicURL = "https://hooks.shop.example/" }, "GATEWAY_PUBLIC_URL"},
		{"public url with query", func(c *sms.Config) { c.PublicURL = "https://hooks.shop.example?x=1" }, "GATEWAY_PUBLIC_URL"},
		{"callbacks need the auth token", func(c *sms.Config) {
			c.AuthToken, c.APIKeySID, c.APIKeySecret, c.PublicURL = "", keySID, "s", "https://hooks.shop.example"
		}, "TWILIO_AUTH_TOKEN: required with GATEWAY_PUBLIC_URL"},
		{"no timeout", func(c *sms.Config) { c.Timeout = 0 }, "SMS_TIMEOUT"},
		{"timeout past the ack wait", func(c *sms.Config) { c.Timeout = time.Minute }, "not below GATEWAY_ACK_WAIT"},
	}
	for _, c := range cases {
		cfg := good
		c.mut(&cfg)
		err := cfg.Validate(30 * time.Second)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
}

func notification(user, phone string) events.Notification {
	return events.Notification{
		NotificationID: events.NotificationID(user, "SKU-1", "us-east-1", 4, events.ChannelSMS),
		RestockEventID: events.RestockEventID("SKU-1", "us-east-1", 4),
		UserID:         user, SKU: "SKU-1", Region: "us-east-1", Channel: events.ChannelSMS, Episode: 4,
		Title: "Kettle", Body: "Kettle is back", URL: "https://shop.example/p/SKU-1",
		CreatedAt: time.Now().UTC(), Locale: "en-US", Contact: phone,
	}
}

func newProvider(t *testing.T, tw *providertest.Twilio, mut func(*sms.Config)) *sms.Provider {
	t.Helper()
	templates, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	cfg := sms.Config{BaseURL: tw.URL, AccountSID: tw.AccountSID(), AuthToken: tw.AuthToken(), From: "+14155550100",
		PublicURL: "https://hooks.shop.example/gw", Timeout: 2 * time.Second}
	if mut != nil {
		mut(&cfg)
	}
	p := sms.NewProvider(cfg, templates, nil, nil)
	t.Cleanup(p.Close)
	return p
}

// TestSendReachesTwilio: one POST of the documented shape (checked by the
// stand-in: basic auth, path, form fields, E.164), the notification id as
// Idempotency-Key, the status callback URL carrying what the receipt needs.
func TestSendReachesTwilio(t *testing.T) {
	tw := providertest.NewTwilio(t, providertest.TwilioOptions{From: []string{"+14155550100"}})
	p := newProvider(t, tw, nil)
	n := notification("alice", "+4915112345678")
	ctx := delivery.WithAttempt(context.Background(), 3)
	id, err := p.Send(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	msgs := tw.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.SID != id || !strings.HasPrefix(id, "SM") || m.To != n.Contact || m.From != "+14155550100" || m.IdempotencyKey != n.NotificationID ||
		m.Body != "Kettle is back in stock: https://shop.example/p/SKU-1" {
		t.Errorf("message %+v, id %s", m, id)
	}
	if want := sms.CallbackURL("https://hooks.shop.example/gw", n, 3); m.StatusCallback != want {
		t.Errorf("StatusCallback %s, want %s", m.StatusCallback, want)
	}
	cb, _ := url.Parse(m.StatusCallback)
	q := cb.Query()
	if cb.Path != "/gw/v1/sms/status" || q.Get("n") != n.NotificationID || q.Get("u") != "alice" || q.Get("s") != "SKU-1" || q.Get("r") != "us-east-1" || q.Get("a") != "3" {
		t.Errorf("StatusCallback %s", m.StatusCallback)
	}

	// An API key instead of the auth token; a Messaging Service instead of From.
	tw2 := providertest.NewTwilio(t, providertest.TwilioOptions{APIKeys: map[string]string{keySID: "s3cret"}, MessagingServices: []string{service}})
	p2 := newProvider(t, tw2, func(c *sms.Config) {
		c.AuthToken, c.APIKeySID, c.APIKeySecret, c.From, c.MessagingServiceSID, c.PublicURL = "", keySID, "s3cret", "", service, ""
	})
	if _, err := p2.Send(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	if m := tw2.Messages()[0]; m.MessagingServiceSID != service || m.From != "" || m.StatusCallback != "" {
		t.Errorf("message %+v", m)
	}
}

// TestSendFailures: what is permanent and what transient, with the label
// each gets; nothing reaches Twilio for a missing or malformed number.
func TestSendFailures(t *testing.T) {
	tw := providertest.NewTwilio(t, providertest.TwilioOptions{})
	p := newProvider(t, tw, nil)
	ctx := context.Background()
	tw.RejectTo("+4915100000001", providertest.TwilioReply{Status: 400, Code: 21610, Message: "Attempt to send to unsubscribed recipient"})
	tw.RejectTo("+4915100000002", providertest.TwilioReply{Status: 400, Code: 21614, Message: "'To' number is not a valid mobile number"})
	tw.RejectTo("+4915100000003", providertest.TwilioReply{Status: 400, Code: 21408, Message: "Permission to send an SMS has not been enabled for the region"})

	cases := []struct {
		name      string
		phone     string
		fail      *providertest.TwilioReply
		permanent bool
		code      string
		after     time.Duration
		requests  int
	}{
		{"no number", "", nil, true, "no_contact", 0, 0},
		{"malformed number", "0151 1234", nil, true, "bad_address", 0, 0},
		{"unsubscribed", "+4915100000001", nil, true, "twilio_21610", 0, 1},
		{"not a mobile", "+4915100000002", nil, true, "twilio_21614", 0, 1},
		{"other 400", "+4915100000003", nil, true, "twilio_400", 0, 1},
		{"503", "+4915112345678", &providertest.TwilioReply{Status: 503}, false, "twilio_503", 0, 1},
		{"429 with Retry-After", "+4915112345678", &providertest.TwilioReply{Status: 429, RetryAfter: "2", Code: 20429}, false, "twilio_429", 2 * time.Second, 1},
	}
	for _, c := range cases {
		before := len(tw.Requests())
		if c.fail != nil {
			tw.Fail(1, *c.fail)
		}
		_, err := p.Send(ctx, notification("bob", c.phone))
		permanent, code := retry.Classify(err)
		if err == nil || permanent != c.permanent || code != c.code || retry.RetryAfter(err) != c.after {
			t.Errorf("%s: %v (permanent %v, code %s, after %s), want permanent %v code %s after %s",
				c.name, err, permanent, code, retry.RetryAfter(err), c.permanent, c.code, c.after)
		}
		if got := len(tw.Requests()) - before; got != c.requests {
			t.Errorf("%s: %d requests reached Twilio, want %d", c.name, got, c.requests)
		}
	}
	// Twilio's own check of 'To' (a number our pattern passes but Twilio
	// does not is its 21211; here the stand-in's pattern is the same, so
	// it is told to).
	tw.RejectTo("+15005550001", providertest.TwilioReply{Status: 400, Code: 21211, Message: "Invalid 'To' Phone Number"})
	_, err := p.Send(ctx, notification("carl", "+15005550001"))
	if permanent, code := retry.Classify(err); !permanent || code != "twilio_21211" || !strings.Contains(err.Error(), "21211") {
		t.Errorf("21211: %v", err)
	}

	// Wrong credentials: Twilio's 401, transient (the work waits for the
	// fixed token instead of failing).
	bad := newProvider(t, tw, func(c *sms.Config) { c.AuthToken = "wrong" })
	_, err = bad.Send(ctx, notification("dora", "+4915112345678"))
	if permanent, code := retry.Classify(err); permanent || code != "twilio_auth" || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	// The server gone: a connection error, transient.
	gone := newProvider(t, tw, func(c *sms.Config) { c.BaseURL = "http://127.0.0.1:1" })
	_, err = gone.Send(ctx, notification("emil", "+4915112345678"))
	var re *retry.Error
	if permanent, code := retry.Classify(err); permanent || code != "connection" || !errors.As(err, &re) {
		t.Errorf("no server: %v", err)
	}
	if n := len(tw.Messages()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
}
