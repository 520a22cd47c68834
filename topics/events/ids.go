package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"unicode/utf8"
)

// IDPattern is the shape of every id (user, sku, event, notification). Ids
// end up in NATS subjects, Kafka keys and Redis keys, so they exclude the
// characters that are special there: '.', '*', '>', '|', ':', '{', '}',
// spaces.
const IDPattern = "[A-Za-z0-9_-]{1,128}"

// MaxIDLen is the longest id IDPattern allows.
const MaxIDLen = 128

// RegionPattern is the shape of a region id. Regions become parts of topic
// names, which must be lowercase, and of NATS subjects.
const RegionPattern = "[a-z0-9]+(-[a-z0-9]+)*, at most 64 characters"

// MaxRegionLen is the longest region id.
const MaxRegionLen = 64

// The delivery channels. A notification goes to exactly one of them.
const (
	ChannelApp   = "app"
	ChannelWeb   = "web"
	ChannelEmail = "email"
	ChannelSMS   = "sms"
)

// ChannelNames returns the known channels in their canonical order; a fresh
// slice each time, so no caller can change another's view.
func ChannelNames() []string {
	return []string{ChannelApp, ChannelWeb, ChannelEmail, ChannelSMS}
}

// ValidChannel reports whether s is one of the known channels.
func ValidChannel(s string) bool {
	switch s {
	case ChannelApp, ChannelWeb, ChannelEmail, ChannelSMS:
		return true
	}
	return false
}

// ValidID reports whether s matches IDPattern.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idByte[s[i]] {
			return false
		}
	}
	return true
}

// idByte marks the bytes IDPattern allows: every record carries several ids,
// and a table lookup per byte was measurably cheaper than the range tests.
var idByte = func() (t [256]bool) {
	for c := range 256 {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
	}
	return t
}()

// CheckID returns a *FieldError naming field when s is not a valid id, and
// nil otherwise. The result is typed as error so it can be returned directly.
func CheckID(field, s string) error {
	if e := checkID(field, s); e != nil {
		return e
	}
	return nil
}

func checkID(field, s string) *FieldError {
	switch {
	case s == "":
		return &FieldError{Field: field, Problem: "required"}
	case !ValidID(s):
		return &FieldError{Field: field, Problem: "must match " + IDPattern + ", got " + quote(s)}
	}
	return nil
}

// ValidRegion reports whether s matches RegionPattern.
func ValidRegion(s string) bool {
	if len(s) == 0 || len(s) > MaxRegionLen {
		return false
	}
	prevDash := true // a region may not start with '-'
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			prevDash = false
		case c == '-':
			if prevDash {
				return false
			}
			prevDash = true
		default:
			return false
		}
	}
	return !prevDash
}

// CheckRegion returns a *FieldError naming field when s is not a valid
// region id, and nil otherwise.
func CheckRegion(field, s string) error {
	if e := checkRegion(field, s); e != nil {
		return e
	}
	return nil
}

func checkRegion(field, s string) *FieldError {
	switch {
	case s == "":
		return &FieldError{Field: field, Problem: "required"}
	case !ValidRegion(s):
		return &FieldError{Field: field, Problem: "must match " + RegionPattern + ", got " + quote(s)}
	}
	return nil
}

func checkChannel(field, s string) *FieldError {
	switch {
	case s == "":
		return &FieldError{Field: field, Problem: "required"}
	case !ValidChannel(s):
		return &FieldError{Field: field, Problem: "must be one of " + strings.Join(ChannelNames(), ", ") + ", got " + quote(s)}
	}
	return nil
}

// idSeparator joins the fields hashed into a deterministic id. It cannot
// occur in an id, a region or a channel, so two different field lists never
// hash the same input.
const idSeparator = "|"

// RestockEventID is the event id of the restock of sku in region that began
// episode. It is deterministic so that the inventory service can publish the
// same restock twice (outbox relay retries) and every consumer sees one
// event: it is the first 32 hex characters of
// sha256("restock|<sku>|<region>|<episode>").
func RestockEventID(sku, region string, episode int64) string {
	return digest("restock", sku, region, strconv.FormatInt(episode, 10))
}

// NotificationID is the id of the notification of userID about sku in
// region, restock episode, on channel. It is the JetStream Nats-Msg-Id and
// the Redis sent-marker key, so however often the fan-out or the notifier
// replays, one (user, sku, region, episode, channel) is delivered once: the
// first 32 hex characters of
// sha256("notification|<user>|<sku>|<region>|<episode>|<channel>").
func NotificationID(userID, sku, region string, episode int64, channel string) string {
	return digest("notification", userID, sku, region, strconv.FormatInt(episode, 10), channel)
}

// digest hashes the parts joined by idSeparator. It runs for every record the
// notifier validates and the fan-out writes, so the input is built in a stack
// buffer: the id string is its only allocation.
func digest(parts ...string) string {
	var buf [512]byte
	b := buf[:0]
	for i, p := range parts {
		if i > 0 {
			b = append(b, idSeparator...)
		}
		b = append(b, p...)
	}
	sum := sha256.Sum256(b)
	var out [32]byte
	hex.Encode(out[:], sum[:16])
	return string(out[:])
}

// checkText checks a required or optional human-readable string: at most
// max characters (counted as Unicode code points, as JSON Schema counts
// maxLength) and no control characters other than newline and tab.
func checkText(p *problems, field, s string, required bool, max int) {
	if s == "" {
		if required {
			p.add(field, "required")
		}
		return
	}
	if !utf8.ValidString(s) {
		p.add(field, "must be valid UTF-8")
		return
	}
	if n := utf8.RuneCountInString(s); n > max {
		p.add(field, "must be at most "+strconv.Itoa(max)+" characters, got "+strconv.Itoa(n))
	}
	for _, r := range s {
		if (r < 0x20 && r != '\n' && r != '\t') || r == 0x7f {
			p.add(field, "must not contain control characters")
			return
		}
	}
}
