package events

import (
	"slices"
	"time"
)

// Notification is the value of notify.<region>.<channel>.v1 (key: user id)
// and the payload of the edge subject edge.<region>.<channel>.<user_id>. Its
// NotificationID is deterministic (see NotificationID): it is the JetStream
// Nats-Msg-Id and the Redis sent-marker, which is what makes delivery
// once-per-(user, sku, region, episode, channel).
type Notification struct {
	NotificationID string    `json:"notification_id"`
	RestockEventID string    `json:"restock_event_id"`
	UserID         string    `json:"user_id"`
	SKU            string    `json:"sku"`
	Region         string    `json:"region"`
	Channel        string    `json:"channel"`
	Episode        int64     `json:"episode"`
	Title          string    `json:"title"`
	Body           string    `json:"body"`
	URL            string    `json:"url"`
	CreatedAt      time.Time `json:"created_at"`

	// Locale is a BCP 47 tag such as "en-US", for the gateway's templates.
	Locale string `json:"locale,omitempty"`
	// TimeZone is an IANA zone name such as "Europe/Berlin"; QuietHours
	// are read in it.
	TimeZone string `json:"time_zone,omitempty"`
	// QuietHours is when the gateway holds the message (requires TimeZone).
	QuietHours *QuietHours `json:"quiet_hours,omitempty"`
	// Contact is the handle for Channel: an email address for email, an
	// E.164 number for sms, a push token or subscription for app and web.
	Contact string `json:"contact,omitempty"`
	// Devices are the user's push devices for Channel (app: fcm, web:
	// webpush), copied from the user's record at fan-out; empty for email
	// and sms. The quick decoder leaves a notification with devices to the
	// general path.
	Devices []Device `json:"devices,omitempty"`
}

// QuietHours is a daily window [Start, End) in local "HH:MM" time; it wraps
// past midnight when End is before Start, and is empty when they are equal.
type QuietHours struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil. NotificationID must be NotificationID(UserID, SKU,
// Region, Episode, Channel) and RestockEventID must be RestockEventID(SKU,
// Region, Episode): a notification that does not derive from its restock
// would slip past the once-only delivery.
func (n Notification) Validate() error {
	p := &problems{typ: SchemaNotification}
	p.check(checkID("notification_id", n.NotificationID))
	p.check(checkID("restock_event_id", n.RestockEventID))
	userErr, skuErr := checkID("user_id", n.UserID), checkID("sku", n.SKU)
	regionErr, chanErr := checkRegion("region", n.Region), checkChannel("channel", n.Channel)
	p.check(userErr)
	p.check(skuErr)
	p.check(regionErr)
	p.check(chanErr)
	checkMin(p, "episode", n.Episode, 1)
	checkText(p, "title", n.Title, true, MaxTitleLen)
	checkText(p, "body", n.Body, true, MaxBodyLen)
	checkURL(p, "url", n.URL, true)
	if n.CreatedAt.IsZero() {
		p.add("created_at", "required")
	}
	checkPreferences(p, "", n.Locale, n.TimeZone, n.QuietHours)
	if n.Contact != "" && chanErr == nil {
		checkContact(p, "contact", n.Channel, n.Contact)
	}
	if len(n.Devices) > 0 && chanErr == nil {
		if kind := DeviceKindOf(n.Channel); kind == "" {
			p.add("devices", "must be empty on the "+n.Channel+" channel")
		} else {
			checkDevices(p, "devices", n.Devices, kind)
		}
	}
	if userErr == nil && skuErr == nil && regionErr == nil && chanErr == nil && n.Episode >= 1 {
		if want := NotificationID(n.UserID, n.SKU, n.Region, n.Episode, n.Channel); ValidID(n.NotificationID) && n.NotificationID != want {
			p.add("notification_id", "must be NotificationID(user_id, sku, region, episode, channel) = "+want+", got "+quote(n.NotificationID))
		}
		if want := RestockEventID(n.SKU, n.Region, n.Episode); ValidID(n.RestockEventID) && n.RestockEventID != want {
			p.add("restock_event_id", "must be RestockEventID(sku, region, episode) = "+want+", got "+quote(n.RestockEventID))
		}
	}
	return p.err()
}

// checkPreferences checks the optional delivery preferences shared by
// WishlistChange, WishlistPreferences and Notification; prefix is the path
// of the object holding them ("" at the top level).
func checkPreferences(p *problems, prefix, locale, timeZone string, qh *QuietHours) {
	if locale != "" {
		checkPattern(p, join(prefix, "locale"), locale, localeRE, "a BCP 47 language tag such as en-US")
	}
	if timeZone != "" {
		if len(timeZone) > 64 {
			p.add(join(prefix, "time_zone"), "must be at most 64 characters")
		} else {
			checkPattern(p, join(prefix, "time_zone"), timeZone, timeZoneRE, "an IANA time zone name such as Europe/Berlin")
		}
	}
	if qh != nil {
		checkPattern(p, join(prefix, "quiet_hours.start"), qh.Start, clockRE, "a time HH:MM between 00:00 and 23:59")
		checkPattern(p, join(prefix, "quiet_hours.end"), qh.End, clockRE, "a time HH:MM between 00:00 and 23:59")
		if timeZone == "" {
			p.add(join(prefix, "time_zone"), "required when quiet_hours is set")
		}
	}
}

// checkContacts checks a channel -> handle map, in channel order so the
// problems come out the same every time.
func checkContacts(p *problems, field string, contacts map[string]string) {
	keys := make([]string, 0, len(contacts))
	for k := range contacts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f := join(field, k)
		if !ValidChannel(k) {
			p.check(checkChannel(f, k))
			continue
		}
		checkContact(p, f, k, contacts[k])
	}
}
