package pipeline_test

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/services/notifier/internal/edge"
	"backinstock/services/notifier/internal/notifiertest"
	"backinstock/services/notifier/internal/pipeline"
	"backinstock/services/notifier/internal/ratelimit"
	"backinstock/services/notifier/internal/store"
	"backinstock/shared/kafka"
	"backinstock/shared/kafka/handlertest"
	"backinstock/shared/natsconn"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

var regions atomic.Int64

// TestPipelineKeepsTheHandlerContract runs the shared handler suite against
// the notifier's pipeline on redis-server and an embedded nats-server with
// JetStream; the durable effect is a message on the region's edge stream.
// Each check gets a region (stream, subjects, Redis keys) of its own. Slow
// is an app rate limit of one notification an hour.
func TestPipelineKeepsTheHandlerContract(t *testing.T) {
	handlertest.Run(t, harness(func(_ testing.TB, topic, _ string) *sarama.ConsumerMessage {
		return &sarama.ConsumerMessage{Topic: topic, Key: []byte("u0"), Value: []byte(`{"not":"a notification"}`)}
	}))
}

// TestPipelineDeadLettersMisKeyedRecords: a notification record whose key is
// not its user id (null included), or whose value repeats a key, is poison:
// rejected, dead-lettered through a real Group, and the records around it
// delivered. The reasons are checked in TestDecodeRefusesMisKeyedRecords.
func TestPipelineDeadLettersMisKeyedRecords(t *testing.T) {
	record := func(tb testing.TB, topic, region, key, user string, edit func(string) string) *sarama.ConsumerMessage {
		v, err := events.Encode(notifiertest.Notification(region, events.ChannelApp, user, "sku-"+region, 1, time.Now().UTC()))
		if err != nil {
			tb.Fatal(err)
		}
		m := &sarama.ConsumerMessage{Topic: topic, Value: []byte(edit(string(v)))}
		if key != "" {
			m.Key = []byte(key)
		}
		return m
	}
	same := func(v string) string { return v }
	tests := []struct {
		name   string
		poison func(tb testing.TB, topic, region string) *sarama.ConsumerMessage
	}{
		{"null key", func(tb testing.TB, topic, region string) *sarama.ConsumerMessage {
			return record(tb, topic, region, "", "pn8", same)
		}},
		{"key of another user", func(tb testing.TB, topic, region string) *sarama.ConsumerMessage {
			return record(tb, topic, region, "pn8", "pn8other", same)
		}},
		{"duplicate user_id", func(tb testing.TB, topic, region string) *sarama.ConsumerMessage {
			return record(tb, topic, region, "pn8", "pn8", func(v string) string {
				return strings.Replace(v, `"user_id":"pn8"`, `"user_id":"pn8","user_id":"pn8other"`, 1)
			})
		}},
		{"duplicate url", func(tb testing.TB, topic, region string) *sarama.ConsumerMessage {
			return record(tb, topic, region, "pn8", "pn8", func(v string) string {
				return strings.Replace(v, `"url":`, `"url":"https://evil.example/","url":`, 1)
			})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := harness(tt.poison)
			t.Run("RejectsPoison", func(t *testing.T) { handlertest.RejectsPoison(t, f) })
			t.Run("DeadLetters", func(t *testing.T) { handlertest.DeadLetters(t, f) })
		})
	}
}

// edgeRig gives a test a region of its own: a Redis client, a publisher
// on the embedded nats-server and the region's edge streams.
func edgeRig(tb testing.TB) (region string, rdb *redis.Client, pub *edge.Publisher, js jetstream.JetStream) {
	region = "hc-" + strconv.FormatInt(regions.Add(1), 10)
	rdb = redis.NewClient(&redis.Options{Addr: env.Redis(tb).Addr})
	tb.Cleanup(func() { _ = rdb.Close() })
	nc, err := nats.Connect(env.NATS(tb).URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = natsconn.Drain(nc, 5*time.Second) })
	if pub, err = edge.NewPublisher(nc, 1024, 5*time.Second); err != nil {
		tb.Fatal(err)
	}
	if js, err = jetstream.New(nc); err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := edge.EnsureStreams(ctx, js, region, edge.StreamOptions{Duplicates: 2 * time.Minute, MaxAge: time.Hour, Replicas: 1}); err != nil {
		tb.Fatal(err)
	}
	return region, rdb, pub, js
}

// harness builds the pipeline under the handler suite; poison makes the
// record it must reject, for a topic and region of the harness's own.
func harness(poison func(tb testing.TB, topic, region string) *sarama.ConsumerMessage) handlertest.Factory {
	return func(tb testing.TB, o handlertest.Options) handlertest.Harness {
		const channel = events.ChannelApp
		region, rdb, pub, js := edgeRig(tb)
		var limits map[string]ratelimit.Limit
		if o.Slow {
			limits = map[string]ratelimit.Limit{channel: {PerSecond: 1.0 / 3600, Burst: 1}}
		}
		p := pipeline.New(pipeline.Options{Region: region, Store: store.New(rdb, region, time.Hour), Pub: pub,
			Limits: ratelimit.NewSet(limits), Log: zaptest.NewLogger(tb, zaptest.Level(zap.WarnLevel))})

		topic := catalog.Notify(region, channel)
		var seq atomic.Int64
		return handlertest.Harness{
			Handler: p,
			Kafka:   kafka.Config{Brokers: env.Kafka(tb).Brokers},
			Topic:   topic,
			Good: func(tb testing.TB, n int) []*sarama.ConsumerMessage {
				recs := make([]*sarama.ConsumerMessage, n)
				for i := range recs {
					k := seq.Add(1)
					nt := notifiertest.Notification(region, channel, "u"+strconv.FormatInt(k, 10), "sku-"+region, 1, time.Now().UTC())
					v, err := events.Encode(nt)
					if err != nil {
						tb.Fatal(err)
					}
					recs[i] = &sarama.ConsumerMessage{Topic: topic, Key: []byte(nt.UserID), Value: v, Offset: k}
				}
				return recs
			},
			Poison: func(tb testing.TB) *sarama.ConsumerMessage { return poison(tb, topic, region) },
			Effects: func(tb testing.TB, recs []*sarama.ConsumerMessage) int {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				c, err := notifiertest.EdgeCounts(ctx, js, region)
				if err != nil {
					tb.Fatalf("read the edge stream: %v", err)
				}
				n := 0
				for _, r := range recs {
					nt, err := events.DecodeNotification(r.Value)
					if err != nil {
						tb.Fatal(err)
					}
					n += c.PerID[nt.NotificationID]
				}
				return n
			},
			Want: func(recs []*sarama.ConsumerMessage) int { return len(recs) },
		}
	}
}
