// Package gatewaytest is scaffolding shared by the gateway's tests: a
// region's edge stream as the notifier creates it, notifications published
// to it as the notifier publishes them, the receipts topic and reading it
// back. It is not used by the gateway itself.
package gatewaytest

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/edge"
	"backinstock/topics/events"
)

var seq atomic.Int64

// Region is a region id no other test of the process uses, so each test
// has its own edge stream and consumers.
func Region() string {
	return "gw" + strconv.FormatInt(time.Now().UnixNano()%1_000_000, 36) + "-" + strconv.FormatInt(seq.Add(1), 10)
}

// CreateStreams creates region's edge streams as the notifier does
// (testenv.CreateEdgeStreams).
func CreateStreams(tb testing.TB, js jetstream.JetStream, region string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := testenv.CreateEdgeStreams(ctx, js, region); err != nil {
		tb.Fatal(err)
	}
}

// Notification is a valid email notification of user about sku in
// region, addressed to <user>@example.com.
func Notification(region, user, sku string, episode int64) events.Notification {
	return events.Notification{
		NotificationID: events.NotificationID(user, sku, region, episode, events.ChannelEmail),
		RestockEventID: events.RestockEventID(sku, region, episode),
		UserID:         user, SKU: sku, Region: region, Channel: events.ChannelEmail, Episode: episode,
		Title: "Kettle " + sku, Body: "Kettle " + sku + " is back in stock at 19.99.", URL: "https://shop.example/p/" + sku,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), Locale: "en-US", Contact: user + "@example.com",
	}
}

// Publish puts n on its edge subject as the notifier does (Nats-Msg-Id =
// notification id, a traceparent); msgID overrides the Msg-Id ("" keeps
// it), to put a second copy past the duplicate window.
func Publish(tb testing.TB, js jetstream.JetStream, n events.Notification, msgID string) {
	tb.Helper()
	data, err := events.Encode(n)
	if err != nil {
		tb.Fatal(err)
	}
	PublishRaw(tb, js, edge.Subject(n.Region, n.Channel, n.UserID), data, msgID, n.NotificationID)
}

// PublishRaw puts data on subject, whatever it is.
func PublishRaw(tb testing.TB, js jetstream.JetStream, subject string, data []byte, msgID, fallbackID string) {
	tb.Helper()
	if msgID == "" {
		msgID = fallbackID
	}
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(jetstream.MsgIDHeader, msgID)
	m.Header.Set("traceparent", events.NewTraceparent())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m); err != nil {
		tb.Fatal(err)
	}
}

// CreateTopic creates a receipts topic for one test.
func CreateTopic(tb testing.TB, k *testenv.Kafka, partitions int32) string {
	tb.Helper()
	name := "delivery.status-" + strconv.FormatInt(seq.Add(1), 10) + "-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ".v1"
	adm, err := kafka.NewClusterAdmin(kafka.Config{Brokers: k.Brokers})
	if err != nil {
		tb.Fatal(err)
	}
	defer adm.Close()
	if err := adm.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		tb.Fatal(err)
	}
	return name
}

// Receipts reads every receipt on topic, decoded strictly, in the order
// of each partition.
func Receipts(tb testing.TB, k *testenv.Kafka, topic string) []events.DeliveryStatus {
	tb.Helper()
	cl, err := kafka.NewClient(kafka.Config{Brokers: k.Brokers})
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	var out []events.DeliveryStatus
	testenv.ReadTopic(tb, cl, topic, func(m *sarama.ConsumerMessage) {
		d, err := events.DecodeDeliveryStatus(m.Value)
		if err != nil {
			tb.Fatalf("receipt at %s/%d/%d: %v", topic, m.Partition, m.Offset, err)
		}
		if string(m.Key) != d.NotificationID {
			tb.Fatalf("receipt key %q, notification id %s", m.Key, d.NotificationID)
		}
		h := kafka.ConsumerHeaders(m)
		if h.Get(events.HeaderSchema) != events.SchemaHeader(events.SchemaDeliveryStatus) || !events.ValidTraceparent(h.Get(events.HeaderTraceparent)) {
			tb.Fatalf("receipt headers %v", h.Keys())
		}
		out = append(out, d)
	})
	return out
}

// Describe is a short form of receipts for failure messages.
func Describe(rs []events.DeliveryStatus) string {
	s := ""
	for _, r := range rs {
		s += fmt.Sprintf("\n  %s %s attempt %d %q", r.NotificationID, r.Status, r.Attempt, r.Reason)
	}
	return s
}
