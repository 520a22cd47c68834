package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/shared/kafka"
	"backinstock/shared/proccpu"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

// BenchmarkNotificationsPerRecord measures what Kafka costs per notification
// when each notification is a record of its own (as the fan-out writes them)
// against the same notifications packed many to a record: the figure that
// decides whether packing is worth a contract change (docs/benchmarks.md).
// One op is one email notification of 478 bytes; each run produces b.N of
// them through Producer (idempotent, acks=all, lz4, 5 ms linger, as the
// fan-out) into a fresh 12-partition topic of a three-broker kfake cluster
// in this process, then reads the topic back (one partition consumer at a
// time): every record once. cpu-ns/op is this process's CPU while
// producing, read-cpu-ns/op while reading back; both include kfake's.
//
//	go test -run '^$' -bench NotificationsPerRecord -benchtime 500000x ./shared/kafka
func BenchmarkNotificationsPerRecord(b *testing.B) {
	k, err := testenv.StartKafka(3)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(k.Close)
	c := kafka.Config{Brokers: k.Brokers}
	one := benchNotification(b)
	for _, per := range []int{1, 10, 50, 200} {
		b.Run(fmt.Sprintf("notifications-per-record=%d", per), func(b *testing.B) {
			topic := testenv.Unique(b, "bench-records")
			createTopic(b, c, topic, 12)
			p, err := kafka.NewProducer(c, kafka.ProducerOptions{Linger: 5 * time.Millisecond}, zap.NewNop())
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			// The values are built before the clock starts: the encoding is
			// the same work either way.
			records := (b.N + per - 1) / per
			msgs := make([]*sarama.ProducerMessage, records)
			for r := range msgs {
				n := min(per, b.N-r*per)
				v := make([]byte, 0, n*(len(one)+1))
				for range n {
					v = append(append(v, one...), '\n')
				}
				msgs[r] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprintf("u%07d", r)), Value: sarama.ByteEncoder(v)}
			}
			cpu0 := processCPU(b)
			b.ResetTimer()
			if err := p.SendAll(context.Background(), msgs); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric((processCPU(b)-cpu0)*1e9/float64(b.N), "cpu-ns/op")
			seen := make(map[string]int, records)
			cpu1 := processCPU(b)
			testenv.ReadTopic(b, p.Client(), topic, func(m *sarama.ConsumerMessage) { seen[string(m.Key)]++ })
			b.ReportMetric((processCPU(b)-cpu1)*1e9/float64(b.N), "read-cpu-ns/op")
			for _, m := range msgs {
				if key := string(m.Key.(sarama.StringEncoder)); seen[key] != 1 {
					b.Fatalf("record %s is in the topic %d times, want once", key, seen[key])
				}
			}
			if len(seen) != records {
				b.Fatalf("the topic holds %d keys, produced %d", len(seen), records)
			}
		})
	}
}

// benchNotification is an email notification with every field the fan-out
// fills in for one.
func benchNotification(b *testing.B) []byte {
	n := events.Notification{UserID: "u0000001", SKU: "SKU-1234", Region: "us-east-1", Channel: "email", Episode: 3,
		Title: "Back in stock: Trail Runner 2", Body: "The Trail Runner 2 you wished for is back in stock.",
		URL: "https://shop.example/p/SKU-1234?utm_source=backinstock", CreatedAt: time.Date(2026, 12, 3, 20, 0, 0, 0, time.UTC),
		Locale: "en-US", TimeZone: "America/New_York", Contact: "shopper1@example.com"}
	n.NotificationID = events.NotificationID(n.UserID, n.SKU, n.Region, n.Episode, n.Channel)
	n.RestockEventID = events.RestockEventID(n.SKU, n.Region, n.Episode)
	if err := n.Validate(); err != nil {
		b.Fatal(err)
	}
	v, err := json.Marshal(n)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// processCPU is this process's CPU seconds so far (kfake's included).
func processCPU(b *testing.B) float64 {
	s, err := proccpu.Seconds(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	return s
}
