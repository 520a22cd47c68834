// Package notifiertest is test and benchmark scaffolding shared by the component
// tests, the crash test driver and the benchmark: topics, notification
// records, and counting what reached the edge. It is not used by the
// notifier itself.
package notifiertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"backinstock/shared/edgecheck"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// CreateTopics applies the topic catalogue (catalog.Plan + catalog.Apply,
// fitted to the cluster's brokers) for the stock topic, the dead-letter topic
// and region's notify topics. A test region is not in the catalogue, so its
// notify topics are the catalogue's notify template renamed; partitions > 0
// overrides their partition count (smaller topics keep -race tests quick).
func CreateTopics(cfg kafka.Config, region string, channels []string, partitions int32) error {
	adm, err := kafka.NewClusterAdmin(cfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	full, err := catalog.Default()
	if err != nil {
		return err
	}
	full = full.ForBrokers(len(cfg.Brokers))
	sub := &catalog.Catalog{Regions: []string{region}, Channels: channels}
	for _, name := range []string{catalog.Stock, catalog.DeadLetter} {
		t, ok := full.Lookup(name)
		if !ok {
			return fmt.Errorf("catalogue lacks %s", name)
		}
		sub.Topics = append(sub.Topics, t)
	}
	tmpl, ok := full.Lookup(catalog.Notify(catalog.DefaultRegions[0], events.ChannelNames()[0]))
	if !ok {
		return errors.New("catalogue lacks the notify topics")
	}
	for _, ch := range channels {
		t := tmpl
		t.Name = catalog.Notify(region, ch)
		if partitions > 0 {
			t.Partitions = partitions
		}
		sub.Topics = append(sub.Topics, t)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	plan, err := catalog.Plan(ctx, adm, sub, false)
	if err != nil {
		return fmt.Errorf("plan topics: %w", err)
	}
	if err := catalog.Apply(ctx, adm, plan); err != nil {
		return fmt.Errorf("apply topics: %w", err)
	}
	return nil
}

// Notification builds a valid notification for user i of sku in region.
func Notification(region, channel, user, sku string, episode int64, created time.Time) events.Notification {
	return events.Notification{
		NotificationID: events.NotificationID(user, sku, region, episode, channel),
		RestockEventID: events.RestockEventID(sku, region, episode),
		UserID:         user, SKU: sku, Region: region, Channel: channel, Episode: episode,
		Title: "Back in stock", Body: sku + " is back", URL: "https://shop.example/p/" + sku,
		CreatedAt: created,
	}
}

// Many builds n notifications spread over users u0..u(n-1) and channels.
func Many(region string, channels []string, n int, sku string, created time.Time) []events.Notification {
	out := make([]events.Notification, n)
	for i := range out {
		out[i] = Notification(region, channels[i%len(channels)], "u"+strconv.Itoa(i), sku, 1, created)
	}
	return out
}

// Record turns a notification into its notify record.
func Record(n events.Notification) (*sarama.ProducerMessage, error) {
	v, err := events.Encode(n)
	if err != nil {
		return nil, err
	}
	return &sarama.ProducerMessage{Topic: catalog.Notify(n.Region, n.Channel), Key: sarama.StringEncoder(n.UserID), Value: sarama.ByteEncoder(v),
		Headers: kafka.RecordHeaders(events.Headers(events.SchemaNotification, ""))}, nil
}

// Produce writes notifications (acks=all) and waits for every ack.
func Produce(ctx context.Context, p *kafka.Producer, ns []events.Notification) error {
	const chunk = 20000
	for len(ns) > 0 {
		k := min(chunk, len(ns))
		msgs := make([]*sarama.ProducerMessage, 0, k)
		for _, n := range ns[:k] {
			m, err := Record(n)
			if err != nil {
				return err
			}
			msgs = append(msgs, m)
		}
		if err := p.SendAll(ctx, msgs); err != nil {
			return fmt.Errorf("produce %d notifications: %w", k, err)
		}
		ns = ns[k:]
	}
	return nil
}

// NewProducer is a producer for tests with a short linger.
func NewProducer(cfg kafka.Config) (*kafka.Producer, error) {
	return kafka.NewProducer(cfg, kafka.ProducerOptions{Linger: 2 * time.Millisecond}, zap.NewNop())
}

// Counts is what the edge stream holds.
type Counts struct {
	Total, Distinct int
	// PerID counts copies per Nats-Msg-Id.
	PerID map[string]int
}

// Dups lists ids stored more than once.
func (c Counts) Dups() []string {
	var out []string
	for id, n := range c.PerID {
		if n > 1 {
			out = append(out, id)
		}
	}
	return out
}

// EdgeCounts reads the region's edge streams from the start and counts
// messages in total and distinct by Nats-Msg-Id.
func EdgeCounts(ctx context.Context, js jetstream.JetStream, region string) (Counts, error) {
	c := Counts{PerID: map[string]int{}}
	got, err := edgecheck.Collect(ctx, js, region, nil, nil)
	if err != nil {
		return c, err
	}
	for _, d := range got {
		c.Total++
		c.PerID[d.MsgID]++
		if c.PerID[d.MsgID] == 1 {
			c.Distinct++
		}
	}
	return c, nil
}

// StreamMsgs is the number of messages the region's streams hold (cheap).
func StreamMsgs(ctx context.Context, js jetstream.JetStream, region string) (uint64, error) {
	st, err := edgecheck.Read(ctx, js, region)
	return st.Msgs, err
}

// CreatedAt reads created_at from an edge payload (latency measurements).
func CreatedAt(m *nats.Msg) (time.Time, error) {
	var v struct {
		CreatedAt time.Time `json:"created_at"`
	}
	err := json.Unmarshal(m.Data, &v)
	return v.CreatedAt, err
}

// Committed sums the group's committed offsets and the topics' high-water
// marks over the given topics, so a caller can wait for "all processed".
func Committed(cl sarama.Client, adm sarama.ClusterAdmin, group string, topics []string) (committed, hwm int64, err error) {
	tps := map[string][]int32{}
	for _, t := range topics {
		ps, err := cl.Partitions(t)
		if err != nil {
			return 0, 0, err
		}
		tps[t] = ps
		for _, p := range ps {
			o, err := cl.GetOffset(t, p, sarama.OffsetNewest)
			if err != nil {
				return 0, 0, err
			}
			hwm += o
		}
	}
	resp, err := adm.ListConsumerGroupOffsets(group, tps)
	if err != nil {
		return 0, hwm, nil // no group yet
	}
	for t, ps := range tps {
		for _, p := range ps {
			if b := resp.GetBlock(t, p); b != nil && b.Offset > 0 {
				committed += b.Offset
			}
		}
	}
	return committed, hwm, nil
}
