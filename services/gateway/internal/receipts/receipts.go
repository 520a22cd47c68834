// Package receipts writes the gateway's delivery outcomes to
// delivery.status.v1 through the shared idempotent producer (acks=all):
// Write returns once every in-sync replica has the record, so the edge
// message may then be acknowledged without the outcome being lost.
package receipts

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"backinstock/shared/kafka"
	"backinstock/topics/events"
)

// Writer produces receipts to one topic.
type Writer struct {
	p     *kafka.Producer
	topic string
}

// New writes to topic (catalog.DeliveryStatus) with p.
func New(p *kafka.Producer, topic string) *Writer { return &Writer{p: p, topic: topic} }

// Write produces d, keyed by its notification id, and waits for the ack.
// traceparent continues the notification's trace ("" starts one).
func (w *Writer) Write(ctx context.Context, d events.DeliveryStatus, traceparent string) error {
	value, err := events.Encode(d)
	if err != nil {
		return fmt.Errorf("receipt of %s: %w", d.NotificationID, err)
	}
	msg := &sarama.ProducerMessage{
		Topic:   w.topic,
		Key:     sarama.StringEncoder(d.NotificationID),
		Value:   sarama.ByteEncoder(value),
		Headers: kafka.RecordHeaders(events.Headers(events.SchemaDeliveryStatus, events.ChildTraceparent(traceparent))),
	}
	if err := w.p.SendAll(ctx, []*sarama.ProducerMessage{msg}); err != nil {
		return fmt.Errorf("receipt of %s: %w", d.NotificationID, err)
	}
	return nil
}

// Status is the receipt of one outcome of n: its event id derived from
// (notification, attempt, status), the reason cut to what the contract
// allows.
func Status(n events.Notification, status, provider, providerMessageID string, attempt int, reason string, at time.Time) events.DeliveryStatus {
	return events.DeliveryStatus{
		EventID:        events.DeliveryEventID(n.NotificationID, attempt, status),
		NotificationID: n.NotificationID, UserID: n.UserID, SKU: n.SKU, Region: n.Region, Channel: n.Channel,
		Status: status, Provider: provider, ProviderMessageID: providerMessageID,
		Attempt: attempt, Reason: Reason(reason), At: at.UTC(),
	}
}

// Reason makes an error text fit DeliveryStatus.Reason: an SMTP reply's
// CR LF and other control characters become spaces, runs of blanks one
// space, and it is cut to events.MaxReasonLen characters.
func Reason(s string) string {
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return r == ' ' || r < 0x20 || r == 0x7f || r == utf8.RuneError
	}), " ")
	if utf8.RuneCountInString(s) > events.MaxReasonLen {
		s = string([]rune(s)[:events.MaxReasonLen-1]) + "…"
	}
	return s
}
