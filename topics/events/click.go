package events

import (
	"crypto/rand"
	"encoding/hex"
	"time"
)

// ClickTypeClicked is the type of a click event: a person followed a
// notification's tracked link. The field is there so the topic can carry
// other engagement events of one notification later without a new layout.
const ClickTypeClicked = "clicked"

// ClickEvent is the value of engagement.clicks.v1 (key: notification id):
// one person followed one notification's tracked link once. Every follow
// is an event (a second click of the same link is a second event), so a
// reader counts total clicks by events and unique clicks by distinct
// notification ids. EventID is random per click; the same record read
// twice (a replay) carries the same one.
type ClickEvent struct {
	EventID        string `json:"event_id"`
	Type           string `json:"type"`
	NotificationID string `json:"notification_id"`
	UserID         string `json:"user_id"`
	SKU            string `json:"sku"`
	Region         string `json:"region"`
	Channel        string `json:"channel"`
	Episode        int64  `json:"episode"`
	// URL is the product page the click was sent to.
	URL string    `json:"url"`
	At  time.Time `json:"at"`
}

// NewClickEventID is a fresh random event id: 32 lower-case hex characters.
func NewClickEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil. NotificationID must be NotificationID(UserID, SKU,
// Region, Episode, Channel): a click is always of a notification that was
// sent.
func (c ClickEvent) Validate() error {
	p := &problems{typ: SchemaClickEvent}
	p.check(checkID("event_id", c.EventID))
	switch {
	case c.Type == "":
		p.add("type", "required")
	case c.Type != ClickTypeClicked:
		p.add("type", "must be "+ClickTypeClicked+", got "+quote(c.Type))
	}
	idErr := checkID("notification_id", c.NotificationID)
	userErr, skuErr := checkID("user_id", c.UserID), checkID("sku", c.SKU)
	regionErr, chanErr := checkRegion("region", c.Region), checkChannel("channel", c.Channel)
	p.check(idErr)
	p.check(userErr)
	p.check(skuErr)
	p.check(regionErr)
	p.check(chanErr)
	checkMin(p, "episode", c.Episode, 1)
	checkURL(p, "url", c.URL, true)
	if c.At.IsZero() {
		p.add("at", "required")
	}
	if idErr == nil && userErr == nil && skuErr == nil && regionErr == nil && chanErr == nil && c.Episode >= 1 {
		if want := NotificationID(c.UserID, c.SKU, c.Region, c.Episode, c.Channel); c.NotificationID != want {
			p.add("notification_id", "must be NotificationID(user_id, sku, region, episode, channel) = "+want+", got "+quote(c.NotificationID))
		}
	}
	return p.err()
}

// DecodeClickEvent decodes and validates one ClickEvent.
func DecodeClickEvent(data []byte) (ClickEvent, error) {
	var v ClickEvent
	err := decodeStrict(SchemaClickEvent, data, &v)
	return v, err
}

// CheckURL returns a *FieldError naming field unless s is an absolute
// http:// or https:// URL without spaces of at most MaxURLLen characters
// (what a notification's url must be), and nil otherwise.
func CheckURL(field, s string) error {
	p := &problems{}
	checkURL(p, field, s, true)
	if len(p.list) > 0 {
		return p.list[0]
	}
	return nil
}
