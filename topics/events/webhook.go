package events

import (
	"time"
)

// WebhookTypeBackInStock is the type of the event a gateway's webhook
// provider POSTs for each notification.
const WebhookTypeBackInStock = "notification.back_in_stock"

// WebhookEvent is the body of a webhook delivery: the gateway's `webhook`
// provider POSTs one per notification to the shop's own endpoint, which
// delivers it through its own systems. It follows the Standard Webhooks
// payload convention (type, timestamp, data); the request is signed per
// that spec (webhook-id = notification id, webhook-timestamp,
// webhook-signature). It is a contract with shops, not a Kafka value: the
// fields are the notification's that a shop needs, named as in
// Notification, and Timestamp is the notification's created_at, so a
// resent notification is the very same body.
type WebhookEvent struct {
	Type      string      `json:"type"`
	Timestamp time.Time   `json:"timestamp"`
	Data      WebhookData `json:"data"`
}

// WebhookData is what a shop learns of one notification. NotificationID is
// also the request's webhook-id: a receiver de-duplicates by it.
type WebhookData struct {
	NotificationID string `json:"notification_id"`
	RestockEventID string `json:"restock_event_id"`
	UserID         string `json:"user_id"`
	SKU            string `json:"sku"`
	Region         string `json:"region"`
	Channel        string `json:"channel"`
	Episode        int64  `json:"episode"`
	Title          string `json:"title"`
	Body           string `json:"body"`
	URL            string `json:"url"`
	// Locale is the recipient's BCP 47 locale, when known.
	Locale string `json:"locale,omitempty"`
	// Contact is the recipient's handle on Channel (an email address, an
	// E.164 number, a push token), when the wishlist holds one.
	Contact string `json:"contact,omitempty"`
}

// NewWebhookEvent is the webhook body of n.
func NewWebhookEvent(n Notification) WebhookEvent {
	return WebhookEvent{
		Type: WebhookTypeBackInStock, Timestamp: n.CreatedAt,
		Data: WebhookData{
			NotificationID: n.NotificationID, RestockEventID: n.RestockEventID, UserID: n.UserID, SKU: n.SKU,
			Region: n.Region, Channel: n.Channel, Episode: n.Episode, Title: n.Title, Body: n.Body, URL: n.URL,
			Locale: n.Locale, Contact: n.Contact,
		},
	}
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil. Data follows the rules of the Notification it comes
// from, ids derived as there.
func (e WebhookEvent) Validate() error {
	p := &problems{typ: SchemaWebhookEvent}
	switch e.Type {
	case WebhookTypeBackInStock:
	case "":
		p.add("type", "required")
	default:
		p.add("type", "must be "+quote(WebhookTypeBackInStock)+", got "+quote(e.Type))
	}
	if e.Timestamp.IsZero() {
		p.add("timestamp", "required")
	}
	d := e.Data
	n := Notification{
		NotificationID: d.NotificationID, RestockEventID: d.RestockEventID, UserID: d.UserID, SKU: d.SKU,
		Region: d.Region, Channel: d.Channel, Episode: d.Episode, Title: d.Title, Body: d.Body, URL: d.URL,
		Locale: d.Locale, Contact: d.Contact,
		// Checked above as timestamp; set so the notification's own check
		// does not report it under data.
		CreatedAt: time.Unix(1, 0),
	}
	if err := n.Validate(); err != nil {
		for _, fe := range err.(*ValidationError).Problems {
			p.add(join("data", fe.Field), fe.Problem)
		}
	}
	return p.err()
}

// DecodeWebhookEvent decodes and validates one webhook body, as strictly
// as the Kafka values: what a receiver written in Go checks.
func DecodeWebhookEvent(data []byte) (WebhookEvent, error) {
	var v WebhookEvent
	err := decodeStrict(SchemaWebhookEvent, data, &v)
	return v, err
}
