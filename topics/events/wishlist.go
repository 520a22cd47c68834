package events

import (
	"strconv"
	"strings"
	"time"
)

// Wishlist operations.
const (
	OpAdd    = "add"
	OpRemove = "remove"
)

// WishlistChange is the value of wishlist.changes.v1 (compacted, key
// "<user_id>|<sku>"): one wishlist entry as added or updated. The topic is
// the durable log the wishlist store is rebuilt from, so a change carries
// everything the store keeps about the entry.
//
// A remove is a tombstone (a null value) for the key "<user_id>|<sku>", so
// that compaction eventually forgets the pair. A rebuild also accepts a
// legacy record with op "remove" for the same key.
//
// At is the wishlist time: when the user first wished for the sku. It is
// kept across updates of the entry (a change of channels or region), because
// it orders the sku's wishlisters and a rebuild must restore that order; it
// is not the time of the update.
type WishlistChange struct {
	UserID string `json:"user_id"`
	SKU    string `json:"sku"`
	Region string `json:"region"`
	// Channels the user wants this sku's restock on: at least one for an
	// add; may be omitted for a remove.
	Channels []string `json:"channels,omitempty"`
	Op       string   `json:"op"`
	// At is the wishlist time, kept across updates (see above).
	At time.Time `json:"at"`

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
	checkPreferences(p, "", w.Locale, w.TimeZone, w.QuietHours)
	checkContacts(p, "contacts", w.Contacts)
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

// WishlistKey is the record key of a WishlistChange (or of its tombstone)
// on wishlist.changes.v1.
func WishlistKey(userID, sku string) string { return userID + "|" + sku }

// PreferencesKeySuffix ends the key of a WishlistPreferences record on
// wishlist.changes.v1. '~' is not an id character, so no "<user_id>|<sku>"
// key can end like this and the two kinds of record never collide.
const PreferencesKeySuffix = "|~prefs"

// PreferencesKey is the record key of a user's WishlistPreferences on
// wishlist.changes.v1: "<user_id>|~prefs".
func PreferencesKey(userID string) string { return userID + PreferencesKeySuffix }

// PreferencesUser returns the user of a preferences key, and false when key
// is not one (it may then be a "<user_id>|<sku>" key). The user id is not
// validated.
func PreferencesUser(key string) (string, bool) {
	return strings.CutSuffix(key, PreferencesKeySuffix)
}

// WishlistPreferences is the value of a preferences record on
// wishlist.changes.v1 (key "<user_id>|~prefs", schema header
// WishlistPreferences/1): a user's delivery preferences as last set. They
// travel on the wishlist's log, next to the entries, so that a rebuild
// restores them with the entries. A later record for the same key replaces
// the earlier one; Preferences absent means the user cleared them.
type WishlistPreferences struct {
	UserID      string       `json:"user_id"`
	Preferences *Preferences `json:"preferences,omitempty"`
	// At is when the preferences were set.
	At time.Time `json:"at"`
}

// Preferences are a user's delivery preferences, applied to every entry of
// the user's wishlist. Every field is optional.
type Preferences struct {
	// Channels are the default channels of an entry added without any.
	Channels   []string    `json:"channels,omitempty"`
	Locale     string      `json:"locale,omitempty"`
	TimeZone   string      `json:"time_zone,omitempty"`
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// Contacts maps a channel to the user's handle on it (email address,
	// E.164 phone number, push token).
	Contacts map[string]string `json:"contacts,omitempty"`
	// Unsubscribed stops every notification to the user.
	Unsubscribed bool `json:"unsubscribed,omitempty"`
	// OptOut lists channels the user never wants, whatever an entry says.
	OptOut []string `json:"opt_out,omitempty"`
	// Devices are the user's push devices (fcm and webpush together, at
	// most MaxDevices, ids distinct). They travel with the preferences so
	// that they are stored, logged and rebuilt the same way and reach the
	// fan-out with them, which copies those of a channel's kind
	// (DeviceKindOf) onto the app and web notifications.
	Devices []Device `json:"devices,omitempty"`
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (w WishlistPreferences) Validate() error {
	p := &problems{typ: SchemaWishlistPreferences}
	p.check(checkID("user_id", w.UserID))
	if w.Preferences != nil {
		w.Preferences.check(p, "preferences")
	}
	if w.At.IsZero() {
		p.add("at", "required")
	}
	return p.err()
}

// Validate checks preferences on their own (an HTTP body, say) with the
// rules WishlistPreferences applies to them, naming fields from the
// preferences object down. It returns a *ValidationError of type
// "Preferences", or nil.
func (pr Preferences) Validate() error {
	p := &problems{typ: "Preferences"}
	pr.check(p, "")
	return p.err()
}

func (pr Preferences) check(p *problems, prefix string) {
	checkChannels(p, join(prefix, "channels"), pr.Channels)
	checkPreferences(p, prefix, pr.Locale, pr.TimeZone, pr.QuietHours)
	checkContacts(p, join(prefix, "contacts"), pr.Contacts)
	checkChannels(p, join(prefix, "opt_out"), pr.OptOut)
	checkDevices(p, join(prefix, "devices"), pr.Devices, "")
}
