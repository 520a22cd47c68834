package kafka_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

// produceAt writes one record per value with its own timestamp (the
// producer's CreateTime), so a test places records in and out of a window.
func produceAt(t testing.TB, c kafka.Config, topic string, values []string, at []time.Time) {
	t.Helper()
	p, err := kafka.NewProducer(c, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(values))
	for i, v := range values {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v), Timestamp: at[i]}
	}
	if err := p.SendAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// TestReplayWindowReadsExactlyTheWindow: 60 records one second apart over 3
// partitions, and one stamped a day early in the middle; a group has read
// them all. The replay of [r10, r30) hands exactly r10..r29 (the early one
// skipped as outside), retries a failed batch, counts a reject, and leaves
// the group's committed offsets as they were.
func TestReplayWindowReadsExactlyTheWindow(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	topic := testenv.Unique(t, "window")
	createTopic(t, c, topic, 3)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var values []string
	var at []time.Time
	for i := range 60 {
		values = append(values, fmt.Sprintf("r%02d", i))
		at = append(at, base.Add(time.Duration(i)*time.Second))
		if i == 20 {
			values = append(values, "early")
			at = append(at, base.Add(-24*time.Hour))
		}
	}
	produceAt(t, c, topic, values, at)

	group := topic + ".group"
	normal := &recorder{}
	stop := runGroup(t, c, kafka.GroupOptions{Group: group, Topics: []string{topic}}, normal)
	testenv.Eventually(t, 30*time.Second, func() bool { return len(normal.values()) == len(values) }, "group read everything")
	stop()
	before := committed(t, c, group, topic, 3)

	var failed atomic.Bool
	replayed := &recorder{fail: func(b *kafka.Batch) error {
		for _, m := range b.Records {
			if string(m.Value) == "r15" {
				b.Reject(m, errors.New("poison"))
			}
		}
		if failed.CompareAndSwap(false, true) {
			return errors.New("edge away")
		}
		return nil
	}}
	reg := prometheus.NewRegistry()
	m := kafka.NewMetrics(reg)
	from, to := base.Add(10*time.Second), base.Add(30*time.Second)
	parts, err := kafka.ReplayWindow(context.Background(), c, kafka.WindowOptions{
		Name: group + ".replay", Topics: []string{topic}, From: from, To: to, MaxBatch: 4, RetryBackoff: time.Millisecond, Metrics: m,
	}, replayed, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	got := replayed.values()
	slices.Sort(got)
	var want []string
	for i := 10; i < 30; i++ {
		want = append(want, fmt.Sprintf("r%02d", i))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("replay handed %v, want %v", got, want)
	}
	var records, outside, rejected int64
	for _, p := range parts {
		records += p.Records
		outside += p.Outside
		rejected += p.Rejected
	}
	if records != 20 || outside != 1 || rejected != 1 || len(parts) != 3 {
		t.Fatalf("summary: %d partitions, %d records, %d outside, %d rejected; want 3, 20, 1, 1: %+v", len(parts), records, outside, rejected, parts)
	}
	if !failed.Load() || testutil.ToFloat64(m.Retries) != 1 {
		t.Fatalf("the failed batch was not retried once (retries %v)", testutil.ToFloat64(m.Retries))
	}
	if h := testutil.ToFloat64(m.ReplayRecords.WithLabelValues(group+".replay", topic, "handled")); h != 19 {
		t.Fatalf("handled metric %v, want 19", h)
	}
	if after := committed(t, c, group, topic, 3); !maps.Equal(before, after) {
		t.Fatalf("the replay moved the group's offsets: %v -> %v", before, after)
	}
}

// TestReplayWindowEmptyAndBadWindows: a window past every record reads
// nothing and returns; To not after From is refused naming --to.
func TestReplayWindowEmptyAndBadWindows(t *testing.T) {
	t.Parallel()
	c := cfg(t)
	topic := testenv.Unique(t, "window-empty")
	createTopic(t, c, topic, 2)
	base := time.Now().Add(-time.Hour)
	produceAt(t, c, topic, []string{"a", "b"}, []time.Time{base, base.Add(time.Second)})
	h := &recorder{}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	parts, err := kafka.ReplayWindow(context.Background(), c, kafka.WindowOptions{
		Name: "empty", Topics: []string{topic}, From: base.Add(time.Minute), To: base.Add(2 * time.Minute),
	}, h, log)
	if err != nil || len(h.values()) != 0 {
		t.Fatalf("empty window: %v, handed %v", err, h.values())
	}
	for _, p := range parts {
		if p.Start != p.End {
			t.Fatalf("empty window has a range: %+v", p)
		}
	}
	_, err = kafka.ReplayWindow(context.Background(), c, kafka.WindowOptions{Name: "bad", Topics: []string{topic}, From: base, To: base}, h, log)
	if err == nil || !strings.Contains(err.Error(), "--to") {
		t.Fatalf("To == From: %v, want an error naming --to", err)
	}
}
