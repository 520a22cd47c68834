// Package wishes holds the wishlist rules that need no I/O: what a valid
// entry and a valid set of preferences are, which channels a wishlister is
// reached on, how an entry is stored compactly, what a notification says, and
// the stock-aware delivery policy. The Redis, Kafka and HTTP adapters call it,
// so the rules are tested once, in tables.
package wishes

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"backinstock/topics/events"
)

// Entry is one (user, sku) wishlist entry. Since is when the user first
// wished for the sku: it orders wishlisters (earliest first), so an update of
// the channels keeps the user's place.
type Entry struct {
	UserID   string
	SKU      string
	Region   string
	Channels []string
	Since    time.Time
}

// Preferences are a user's delivery preferences, applied to every entry. It
// is the contract's type (events.Preferences: the same fields and JSON, so a
// conversion is free) with the service's rules as methods; the changelog
// carries it inside events.WishlistPreferences.
type Preferences events.Preferences

// FieldError is a rule broken by one field; the HTTP layer turns it into a 422.
type FieldError struct {
	Field, Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// ErrUnknownRegion marks a region that is well-formed but not served.
var ErrUnknownRegion = errors.New("unknown region")

// CheckRegion accepts a region of the configured list.
func CheckRegion(field, region string, regions []string) error {
	if err := events.CheckRegion(field, region); err != nil {
		return err
	}
	if !slices.Contains(regions, region) {
		return &FieldError{Field: field, Problem: fmt.Sprintf("%v: %q is not one of %s", ErrUnknownRegion, region, strings.Join(regions, ", "))}
	}
	return nil
}

// CheckChannels accepts a non-empty list of distinct known channels when
// required, or an empty one otherwise.
func CheckChannels(field string, chans []string, required bool) error {
	if len(chans) == 0 {
		if required {
			return &FieldError{Field: field, Problem: "at least one channel is required"}
		}
		return nil
	}
	seen := map[string]bool{}
	for i, c := range chans {
		f := field + "[" + strconv.Itoa(i) + "]"
		if !events.ValidChannel(c) {
			return &FieldError{Field: f, Problem: fmt.Sprintf("must be one of %s, got %q", strings.Join(events.ChannelNames(), ", "), c)}
		}
		if seen[c] {
			return &FieldError{Field: f, Problem: fmt.Sprintf("duplicate channel %q", c)}
		}
		seen[c] = true
	}
	return nil
}

// CheckEntry validates an entry about to be stored.
func CheckEntry(e Entry, regions []string) error {
	var errs []error
	errs = append(errs, events.CheckID("user_id", e.UserID), events.CheckID("sku", e.SKU),
		CheckRegion("region", e.Region, regions), CheckChannels("channels", e.Channels, true))
	return errors.Join(errs...)
}

// CheckPreferences validates preferences with the contract's rules
// (events.Preferences.Validate: channel lists, locale, time zone, quiet
// hours, contacts), the same the changelog's decoder and the notifications
// apply, so stored preferences never make an invalid record.
func CheckPreferences(userID string, p Preferences) error {
	return errors.Join(events.CheckID("user_id", userID), events.Preferences(p).Validate())
}

// Normalize sorts channel lists into canonical order and devices by id so
// that equal preferences encode equally.
func (p *Preferences) Normalize() {
	p.Channels = canonical(p.Channels)
	p.OptOut = canonical(p.OptOut)
	if len(p.Contacts) == 0 {
		p.Contacts = nil
	}
	if len(p.Devices) == 0 {
		p.Devices = nil
	}
	sortDevices(p.Devices)
}

func canonical(chans []string) []string {
	if len(chans) == 0 {
		return nil
	}
	var out []string
	for _, c := range events.ChannelNames() {
		if slices.Contains(chans, c) {
			out = append(out, c)
		}
	}
	return out
}

// CanonicalChannels returns chans in canonical order, without duplicates.
func CanonicalChannels(chans []string) []string { return canonical(chans) }

// Reach returns the channels a wishlister is notified on: the entry's
// channels minus the user's opt-outs, and none for an unsubscribed user.
func Reach(entryChannels []string, p *Preferences) []string {
	if p == nil {
		return entryChannels
	}
	if p.Unsubscribed {
		return nil
	}
	if len(p.OptOut) == 0 {
		return entryChannels
	}
	out := make([]string, 0, len(entryChannels))
	for _, c := range entryChannels {
		if !slices.Contains(p.OptOut, c) {
			out = append(out, c)
		}
	}
	return out
}

// EncodeItem is the compact form of an entry in the user's Redis hash:
// "<since ms> <region> <channel>,<channel>". A fan-out decodes one per
// wishlister, so it avoids JSON.
func EncodeItem(e Entry) string {
	return strconv.FormatInt(e.Since.UnixMilli(), 10) + " " + e.Region + " " + strings.Join(e.Channels, ",")
}

// DecodeItem reads EncodeItem's form.
func DecodeItem(userID, sku, s string) (Entry, error) {
	ms, rest, ok1 := strings.Cut(s, " ")
	region, chans, ok2 := strings.Cut(rest, " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok1 || !ok2 || err != nil || region == "" || chans == "" {
		return Entry{}, fmt.Errorf("stored item %s|%s: malformed %q", userID, sku, s)
	}
	return Entry{UserID: userID, SKU: sku, Region: region, Channels: strings.Split(chans, ","), Since: time.UnixMilli(n)}, nil
}

// Change is the changelog record of an entry: an add carrying everything the
// store keeps, so the compacted log alone rebuilds the store. At is the
// entry's wishlist time (Since), not the time of the update, for the same
// reason.
func Change(e Entry) events.WishlistChange {
	return events.WishlistChange{UserID: e.UserID, SKU: e.SKU, Region: e.Region, Channels: e.Channels, Op: events.OpAdd, At: e.Since.UTC()}
}

// EntryOf is the inverse of Change.
func EntryOf(c events.WishlistChange) Entry {
	return Entry{UserID: c.UserID, SKU: c.SKU, Region: c.Region, Channels: canonical(c.Channels), Since: time.UnixMilli(c.At.UnixMilli())}
}
