package events

import (
	"slices"
	"strconv"
	"time"
)

// Wishlist operations.
const (
	OpAdd    = "add"
	OpRemove = "remove"
)

// WishlistChange is the value of wishlist.changes.v1 (compacted, key
// "<user_id>|<sku>"): one wishlist add or remove. The topic is the durable
// log the wishlist store is rebuilt from, so a change carries everything the
// store keeps about the entry and the user's delivery preferences. A remove
// is an ordinary record with op "remove" (not a tombstone) so that a rebuild
// replaying the log sees it.
type WishlistChange struct {
	UserID string `json:"user_id"`
	SKU    string `json:"sku"`
	Region string `json:"region"`
	// Channels the user wants this sku's restock on: at least one for an
	// add; may be omitted for a remove.
	Channels []string  `json:"channels,omitempty"`
	Op       string    `json:"op"`
	At       time.Time `json:"at"`

	// Optional user preferences, copied onto the notifications.
	Locale     string      `json:"locale,omitempty"`
	TimeZone   string      `json:"time_zone,omitempty"`
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// Contacts maps a channel to the user's handle on it (email address,
	// E.164 phone number, push token).
	Contacts map[string]string `json:"contacts,omitempty"`
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (w WishlistChange) Validate() error {
	p := &problems{typ: SchemaWishlistChange}
	p.check(checkID("user_id", w.UserID))
	p.check(checkID("sku", w.SKU))
	p.check(checkRegion("region", w.Region))
	switch w.Op {
	case OpAdd:
		if len(w.Channels) == 0 {
			p.add("channels", "at least one channel is required for op add")
		}
	case OpRemove:
	case "":
		p.add("op", "required")
	default:
		p.add("op", "must be "+OpAdd+" or "+OpRemove+", got "+quote(w.Op))
	}
	checkChannels(p, "channels", w.Channels)
	if w.At.IsZero() {
		p.add("at", "required")
	}
	checkPreferences(p, w.Locale, w.TimeZone, w.QuietHours)
	keys := make([]string, 0, len(w.Contacts))
	for k := range w.Contacts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		field := join("contacts", k)
		if !ValidChannel(k) {
			p.check(checkChannel(field, k))
			continue
		}
		checkContact(p, field, k, w.Contacts[k])
	}
	return p.err()
}

func checkChannels(p *problems, field string, chans []string) {
	seen := make(map[string]bool, len(chans))
	for i, c := range chans {
		f := field + "[" + strconv.Itoa(i) + "]"
		if e := checkChannel(f, c); e != nil {
			p.check(e)
			continue
		}
		if seen[c] {
			p.add(f, "duplicate channel "+quote(c))
		}
		seen[c] = true
	}
}

// WishlistKey is the record key of wishlist.changes.v1.
func WishlistKey(userID, sku string) string { return userID + "|" + sku }
