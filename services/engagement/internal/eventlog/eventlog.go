// Package eventlog writes the engagement service's events (click events to
// engagement.clicks.v1, orders to orders.v1) through the shared idempotent
// producer (acks=all): Write returns once every in-sync replica has the
// record.
package eventlog

import (
	"context"
	"fmt"

	"github.com/IBM/sarama"

	"backinstock/shared/kafka"
	"backinstock/topics/events"
)

// Writer produces events of one schema to one topic.
type Writer[T events.Validator] struct {
	p      *kafka.Producer
	topic  string
	schema string
	key    func(T) string
}

// New writes to topic with p; schema names the value (events.Schema*) in
// the record's headers, key gives each record's key.
func New[T events.Validator](p *kafka.Producer, topic, schema string, key func(T) string) *Writer[T] {
	return &Writer[T]{p: p, topic: topic, schema: schema, key: key}
}

// Clicks writes click events, keyed by notification id (catalog.Clicks).
func Clicks(p *kafka.Producer, topic string) *Writer[events.ClickEvent] {
	return New(p, topic, events.SchemaClickEvent, func(c events.ClickEvent) string { return c.NotificationID })
}

// Orders writes orders, keyed by order id (catalog.Orders).
func Orders(p *kafka.Producer, topic string) *Writer[events.Order] {
	return New(p, topic, events.SchemaOrder, func(o events.Order) string { return o.OrderID })
}

// Write produces v and waits for the ack.
func (w *Writer[T]) Write(ctx context.Context, v T) error {
	key := w.key(v)
	value, err := events.Encode(v)
	if err != nil {
		return fmt.Errorf("%s %s: %w", w.schema, key, err)
	}
	msg := &sarama.ProducerMessage{
		Topic:   w.topic,
		Key:     sarama.StringEncoder(key),
		Value:   sarama.ByteEncoder(value),
		Headers: kafka.RecordHeaders(events.Headers(w.schema, events.NewTraceparent())),
	}
	if err := w.p.SendAll(ctx, []*sarama.ProducerMessage{msg}); err != nil {
		return fmt.Errorf("%s %s to %s: %w", w.schema, key, w.topic, err)
	}
	return nil
}
