package events

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Limits shared by the Go validation and the JSON Schemas.
const (
	// MaxQuantity bounds every stock quantity: far above any real stock,
	// low enough that sums over regions never overflow.
	MaxQuantity = 1_000_000_000
	// MaxURLLen is the longest product or notification URL.
	MaxURLLen = 2048
	// MaxTitleLen bounds a product title and a notification title.
	MaxTitleLen = 200
	// MaxBodyLen bounds a notification body.
	MaxBodyLen = 2000
	// MaxTokenLen bounds an app or web contact handle (a push token or a
	// web-push subscription).
	MaxTokenLen = 4096
	// MaxEmailLen is the longest email address SMTP allows.
	MaxEmailLen = 254
	// MaxPerUnit bounds Delivery.PerUnit.
	MaxPerUnit = 1_000_000
	// MaxIntervalMS bounds Delivery.IntervalMS: one day.
	MaxIntervalMS = 86_400_000
)

// Patterns, written as the JSON Schemas write them.
const (
	PricePattern    = `^(0|[1-9][0-9]{0,11})(\.[0-9]{1,4})?$`
	LocalePattern   = `^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$`
	TimeZonePattern = `^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$`
	ClockPattern    = `^([01][0-9]|2[0-3]):[0-5][0-9]$`
	EmailPattern    = `^[^@\s]+@[^@\s]+\.[^@\s]+$`
	PhonePattern    = `^\+[1-9][0-9]{6,14}$`
)

var (
	priceRE    = regexp.MustCompile(PricePattern)
	localeRE   = regexp.MustCompile(LocalePattern)
	timeZoneRE = regexp.MustCompile(TimeZonePattern)
	clockRE    = regexp.MustCompile(ClockPattern)
	emailRE    = regexp.MustCompile(EmailPattern)
	phoneRE    = regexp.MustCompile(PhonePattern)
)

func checkRange(p *problems, field string, v, min, max int64) {
	if v < min || v > max {
		p.add(field, "must be between "+strconv.FormatInt(min, 10)+" and "+strconv.FormatInt(max, 10)+", got "+strconv.FormatInt(v, 10))
	}
}

func checkMin(p *problems, field string, v, min int64) {
	if v < min {
		p.add(field, "must be at least "+strconv.FormatInt(min, 10)+", got "+strconv.FormatInt(v, 10))
	}
}

func checkPattern(p *problems, field, s string, re *regexp.Regexp, what string) {
	if !re.MatchString(s) {
		p.add(field, "must be "+what+", got "+quote(s))
	}
}

// checkURL wants an absolute http or https URL with a host and no
// whitespace: a link a person can open from a notification.
func checkURL(p *problems, field, s string, required bool) {
	if s == "" {
		if required {
			p.add(field, "required")
		}
		return
	}
	if len(s) > MaxURLLen {
		p.add(field, "must be at most "+strconv.Itoa(MaxURLLen)+" characters")
		return
	}
	rest, host, ok := httpParts(s)
	bad := !ok || host == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f })
	if !bad && !plainURL(host, rest) {
		if _, err := url.Parse(s); err != nil {
			bad = true
		}
	}
	if bad {
		p.add(field, "must be an absolute http:// or https:// URL without spaces, got "+quote(s))
	}
}

// httpParts splits an http:// or https:// URL into what follows the scheme
// and the host at its start; ok is false for any other scheme.
func httpParts(s string) (rest, host string, ok bool) {
	rest, ok = strings.CutPrefix(s, "https://")
	if !ok {
		rest, ok = strings.CutPrefix(s, "http://")
	}
	host, _, _ = strings.Cut(rest, "/")
	host, _, _ = strings.Cut(host, "?")
	host, _, _ = strings.Cut(host, "#")
	return rest, host, ok
}

// plainURL tells whether url.Parse must accept an http(s) URL whose host is
// host and whose part after the scheme is rest, without calling it: a host of
// letters, digits, dots and hyphens (no port, no user info) and nothing after
// it but unreserved characters and sub-delimiters, with no percent-escape to
// check. Every notification carries a URL and url.Parse was a twentieth of the
// notifier's CPU; anything less plain still goes through url.Parse.
func plainURL(host, rest string) bool {
	for i := 0; i < len(host); i++ {
		if c := host[i]; !(idByte[c] && c != '_' || c == '.') {
			return false
		}
	}
	for i := len(host); i < len(rest); i++ {
		if !urlByte[rest[i]] {
			return false
		}
	}
	return true
}

// urlByte marks the bytes plainURL lets through after the host.
var urlByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = idByte[c] || strings.IndexByte("./?#&=+,;:@!$*'()~", byte(c)) >= 0
	}
	return t
}()

// checkContact checks the handle for one channel: an email address, an
// E.164 phone number, or an opaque push token.
func checkContact(p *problems, field, channel, s string) {
	switch channel {
	case ChannelEmail:
		if len(s) > MaxEmailLen {
			p.add(field, "must be at most "+strconv.Itoa(MaxEmailLen)+" characters")
			return
		}
		checkPattern(p, field, s, emailRE, "an email address")
	case ChannelSMS:
		checkPattern(p, field, s, phoneRE, "an E.164 phone number such as +14155550100")
	default:
		checkText(p, field, s, true, MaxTokenLen)
	}
}
