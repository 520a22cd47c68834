package sms

import (
	"net/url"
	"regexp"
	"strings"
	"time"

	"backinstock/shared/config"
	"backinstock/topics/events"
)

// DefaultBaseURL is Twilio's API.
const DefaultBaseURL = "https://api.twilio.com"

// Config is the Twilio provider's configuration.
type Config struct {
	// BaseURL is the API's base (TWILIO_BASE_URL): Twilio's, or a local
	// server of the same shape in tests.
	BaseURL string
	// AccountSID names the account (AC…); AuthToken is its auth token:
	// the API's basic-auth password unless an API key is given, and
	// always the key status callbacks are signed with.
	AccountSID string
	AuthToken  string
	// APIKeySID and APIKeySecret (SK…), when given, authenticate the API
	// calls instead of the auth token (revocable without touching it).
	APIKeySID    string
	APIKeySecret string
	// From is the sender (an E.164 number, a short code or an
	// alphanumeric sender id); MessagingServiceSID (MG…) lets Twilio pick
	// from a Messaging Service's pool instead. Exactly one of them.
	From                string
	MessagingServiceSID string
	// PublicURL is the gateway's public base URL (GATEWAY_PUBLIC_URL):
	// every message's StatusCallback is PublicURL + StatusPath. Empty: no
	// callbacks, so no delivered/undelivered receipts.
	PublicURL string
	// Timeout bounds one API call (SMS_TIMEOUT), below the ack wait.
	Timeout time.Duration
	// Conns bounds the open connections to the API (the replica's workers).
	Conns int
}

var (
	accountSIDRE = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	apiKeySIDRE  = regexp.MustCompile(`^SK[0-9a-fA-F]{32}$`)
	serviceSIDRE = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	phoneRE      = regexp.MustCompile(events.PhonePattern)
	// A short code is 5 or 6 digits (3 to 8 in some countries); an
	// alphanumeric sender id 1 to 11 letters, digits and spaces with a
	// letter among them.
	shortCodeRE = regexp.MustCompile(`^[0-9]{3,8}$`)
	alphaIDRE   = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
)

// Validate names the variable of every wrong setting; ackWait is
// GATEWAY_ACK_WAIT, which a stuck call must not outlive.
func (c Config) Validate(ackWait time.Duration) error {
	var p config.Problems
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		p.Addf("TWILIO_BASE_URL", "%q is not an http(s) URL without query, such as %s", c.BaseURL, DefaultBaseURL)
	}
	switch {
	case c.AccountSID == "":
		p.Addf("TWILIO_ACCOUNT_SID", "required for the sms channel (twilio)")
	case !accountSIDRE.MatchString(c.AccountSID):
		p.Addf("TWILIO_ACCOUNT_SID", "%q is not an account SID (AC and 32 hex digits)", c.AccountSID)
	}
	switch {
	case c.APIKeySID == "" && c.APIKeySecret == "":
		if c.AuthToken == "" {
			p.Addf("TWILIO_AUTH_TOKEN", "required (or TWILIO_API_KEY_SID and TWILIO_API_KEY_SECRET)")
		}
	case c.APIKeySID == "":
		p.Addf("TWILIO_API_KEY_SID", "required with TWILIO_API_KEY_SECRET")
	case c.APIKeySecret == "":
		p.Addf("TWILIO_API_KEY_SECRET", "required with TWILIO_API_KEY_SID")
	case !apiKeySIDRE.MatchString(c.APIKeySID):
		p.Addf("TWILIO_API_KEY_SID", "%q is not an API key SID (SK and 32 hex digits)", c.APIKeySID)
	}
	switch {
	case c.From == "" && c.MessagingServiceSID == "":
		p.Addf("TWILIO_FROM", "required (or TWILIO_MESSAGING_SERVICE_SID)")
	case c.From != "" && c.MessagingServiceSID != "":
		p.Addf("TWILIO_FROM", "give TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID, not both")
	case c.From != "" && !senderOK(c.From):
		p.Addf("TWILIO_FROM", "%q is not an E.164 number (+14155550100), a short code or an alphanumeric sender id (up to 11 characters)", c.From)
	case c.MessagingServiceSID != "" && !serviceSIDRE.MatchString(c.MessagingServiceSID):
		p.Addf("TWILIO_MESSAGING_SERVICE_SID", "%q is not a Messaging Service SID (MG and 32 hex digits)", c.MessagingServiceSID)
	}
	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(c.PublicURL, "/") {
			p.Addf("GATEWAY_PUBLIC_URL", "%q is not an http(s) base URL without query, fragment or trailing slash, such as https://hooks.shop.example/gateway/us-east-1", c.PublicURL)
		}
		if c.AuthToken == "" {
			p.Addf("TWILIO_AUTH_TOKEN", "required with GATEWAY_PUBLIC_URL: Twilio signs the status callbacks with it")
		}
	}
	config.Positive(&p, "SMS_TIMEOUT", c.Timeout)
	if c.Timeout >= ackWait && ackWait > 0 {
		p.Addf("SMS_TIMEOUT", "%s is not below GATEWAY_ACK_WAIT %s: a stuck send would outlive its claim", c.Timeout, ackWait)
	}
	return p.Err()
}

func senderOK(s string) bool {
	if phoneRE.MatchString(s) || shortCodeRE.MatchString(s) {
		return true
	}
	return alphaIDRE.MatchString(s) && strings.ContainsFunc(s, func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' })
}
