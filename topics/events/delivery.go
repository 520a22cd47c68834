package events

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Delivery statuses: what became of one attempt to reach a person. A
// gateway writes queued, sent, failed and suppressed itself; delivered, bounced and
// undelivered come from providers that report later (a delivery receipt, a
// bounce, a status callback).
const (
	// StatusQueued: the provider took the message but has not handed it on
	// yet (an SMS provider's "queued").
	StatusQueued = "queued"
	// StatusSent: the provider accepted the message (an SMTP server's 250
	// after DATA, an HTTP provider's 2xx).
	StatusSent = "sent"
	// StatusDelivered: the provider reports the message reached the device
	// or mailbox.
	StatusDelivered = "delivered"
	// StatusFailed: the gateway gave up: a permanent error (SMTP 5xx, a
	// missing or malformed contact, a template that cannot render this
	// record) or the last attempt failed. Reason says which.
	StatusFailed = "failed"
	// StatusBounced: the provider accepted the message, then the recipient's
	// side refused it.
	StatusBounced = "bounced"
	// StatusUndelivered: the provider accepted the message and later says it
	// could not be delivered (an SMS carrier's "undelivered").
	StatusUndelivered = "undelivered"
	// StatusSuppressed: the gateway did not send it because the user
	// unsubscribed or opted out of the channel after the fan-out (the
	// user's opt-out record, topics/optout, read right before the
	// provider). Reason says which.
	StatusSuppressed = "suppressed"
)

// DeliveryStatusNames returns the statuses in their canonical order, a
// fresh slice each time.
func DeliveryStatusNames() []string {
	return []string{StatusQueued, StatusSent, StatusDelivered, StatusFailed, StatusBounced, StatusUndelivered, StatusSuppressed}
}

// ValidDeliveryStatus reports whether s is one of DeliveryStatusNames.
func ValidDeliveryStatus(s string) bool {
	switch s {
	case StatusQueued, StatusSent, StatusDelivered, StatusFailed, StatusBounced, StatusUndelivered, StatusSuppressed:
		return true
	}
	return false
}

// statusNeedsReason tells the statuses that say something went wrong: a
// reader must learn what.
func statusNeedsReason(s string) bool {
	return s == StatusFailed || s == StatusBounced || s == StatusUndelivered || s == StatusSuppressed
}

// Limits of a DeliveryStatus.
const (
	// MaxAttempt bounds DeliveryStatus.Attempt, far above any redelivery
	// limit a gateway is configured with.
	MaxAttempt = 10_000
	// MaxReasonLen bounds DeliveryStatus.Reason: an SMTP reply or a
	// provider's error text, cut by the gateway before it writes.
	MaxReasonLen = 1000
	// MaxProviderMessageIDLen bounds DeliveryStatus.ProviderMessageID (an
	// RFC 5322 Message-ID may be 998 characters; ours are far shorter).
	MaxProviderMessageIDLen = 998
)

// ProviderPattern is the shape of a provider name ("smtp", "twilio",
// "fcm", "webpush", "webhook"): a label reports group by, not free text.
const ProviderPattern = `^[a-z][a-z0-9-]{0,31}$`

var providerRE = regexp.MustCompile(ProviderPattern)

// DeliveryStatus is the value of delivery.status.v1 (key: notification id):
// one outcome of one attempt to deliver one notification. EventID is
// DeliveryEventID(NotificationID, Attempt, Status), so the same outcome
// written twice (a gateway that crashed after producing it and before
// acknowledging the edge message) is one event to every reader.
type DeliveryStatus struct {
	EventID        string `json:"event_id"`
	NotificationID string `json:"notification_id"`
	UserID         string `json:"user_id"`
	SKU            string `json:"sku"`
	Region         string `json:"region"`
	Channel        string `json:"channel"`
	Status         string `json:"status"`
	// Provider is the provider the channel is configured with ("smtp").
	Provider string `json:"provider"`
	// ProviderMessageID is the provider's handle on the message (the
	// email's Message-ID, an SMS provider's message sid), when there is one.
	ProviderMessageID string `json:"provider_message_id,omitempty"`
	// Attempt counts the deliveries of the notification to the gateway (1
	// for the first), JetStream's delivery count.
	Attempt int `json:"attempt"`
	// Reason says why, for failed, bounced, undelivered and suppressed
	// (required there); optional otherwise.
	Reason string    `json:"reason,omitempty"`
	At     time.Time `json:"at"`
}

// DeliveryEventID is the event id of the outcome status of attempt of
// notificationID: the first 32 hex characters of
// sha256("delivery|<notification_id>|<attempt>|<status>").
func DeliveryEventID(notificationID string, attempt int, status string) string {
	return digest("delivery", notificationID, strconv.Itoa(attempt), status)
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil. EventID must be DeliveryEventID(NotificationID,
// Attempt, Status).
func (d DeliveryStatus) Validate() error {
	p := &problems{typ: SchemaDeliveryStatus}
	p.check(checkID("event_id", d.EventID))
	idErr := checkID("notification_id", d.NotificationID)
	p.check(idErr)
	p.check(checkID("user_id", d.UserID))
	p.check(checkID("sku", d.SKU))
	p.check(checkRegion("region", d.Region))
	p.check(checkChannel("channel", d.Channel))
	statusOK := ValidDeliveryStatus(d.Status)
	switch {
	case d.Status == "":
		p.add("status", "required")
	case !statusOK:
		p.add("status", "must be one of "+strings.Join(DeliveryStatusNames(), ", ")+", got "+quote(d.Status))
	}
	if d.Provider == "" {
		p.add("provider", "required")
	} else {
		checkPattern(p, "provider", d.Provider, providerRE, "a provider name matching "+ProviderPattern)
	}
	checkText(p, "provider_message_id", d.ProviderMessageID, false, MaxProviderMessageIDLen)
	checkRange(p, "attempt", int64(d.Attempt), 1, MaxAttempt)
	checkText(p, "reason", d.Reason, statusNeedsReason(d.Status), MaxReasonLen)
	if d.At.IsZero() {
		p.add("at", "required")
	}
	if idErr == nil && statusOK && d.Attempt >= 1 && ValidID(d.EventID) {
		if want := DeliveryEventID(d.NotificationID, d.Attempt, d.Status); d.EventID != want {
			p.add("event_id", "must be DeliveryEventID(notification_id, attempt, status) = "+want+", got "+quote(d.EventID))
		}
	}
	return p.err()
}
