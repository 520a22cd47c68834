package app_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/services/notifier/app"
	"backinstock/services/notifier/internal/edge"
	"backinstock/services/notifier/internal/notifiertest"
	"backinstock/shared/testenv"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

// produceAt writes the notifications with the record timestamp at, one
// millisecond apart.
func produceAt(t *testing.T, f *fixture, ns []events.Notification, at time.Time) {
	t.Helper()
	msgs := make([]*sarama.ProducerMessage, len(ns))
	for i, n := range ns {
		m, err := notifiertest.Record(n)
		if err != nil {
			t.Fatal(err)
		}
		m.Timestamp = at.Add(time.Duration(i) * time.Millisecond)
		msgs[i] = m
	}
	if err := f.prod.SendAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// groupOffsets reads the normal group's committed offsets per partition.
func (f *fixture) groupOffsets(t *testing.T) map[string]int64 {
	t.Helper()
	tps := map[string][]int32{}
	for _, topic := range f.topics() {
		ps, err := f.cl.Partitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		tps[topic] = ps
	}
	resp, err := f.adm.ListConsumerGroupOffsets("notifier."+f.region, tps)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for topic, ps := range tps {
		for _, p := range ps {
			if b := resp.GetBlock(topic, p); b != nil {
				out[fmt.Sprintf("%s/%d", topic, p)] = b.Offset
			}
		}
	}
	return out
}

func (f *fixture) replayWindow(t *testing.T, from, to time.Time) string {
	t.Helper()
	cfg := app.ReplayConfig{Config: f.config(), From: from.Format(time.RFC3339Nano), To: to.Format(time.RFC3339Nano)}
	var out bytes.Buffer
	if err := app.Replay(context.Background(), cfg, &out, zap.NewNop(), nil); err != nil {
		t.Fatalf("replay: %v\n%s", err, out.String())
	}
	t.Logf("replay [%s, %s):\n%s", cfg.From, cfg.To, out.String())
	return out.String()
}

func ids(ns []events.Notification) map[string]bool {
	out := map[string]bool{}
	for _, n := range ns {
		out[n.NotificationID] = true
	}
	return out
}

// TestReplayWindowDeliversExactlyTheWindow: records stamped before, inside
// and after [T1, T2); the group has delivered the first two sets and is
// stopped before the third. (b) With the markers in place a window replay
// puts nothing on the edge. (a) With the markers wiped and a fresh edge
// stream, it delivers each record of the window once and nothing else; run
// again, nothing more. Neither moves the group's committed offsets, so the
// restarted group then delivers the records after T2, once.
func TestReplayWindowDeliversExactlyTheWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []string{"app", "email"}, nil)
	// A private Redis: this test flushes it.
	rd, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rd.Close)
	f.redis = rd
	const n = 120
	before := notifiertest.Many(f.region, f.chans, n, "sku-before", time.Now())
	inside := notifiertest.Many(f.region, f.chans, n, "sku-inside", time.Now())
	after := notifiertest.Many(f.region, f.chans, n, "sku-after", time.Now())
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	t1, t2 := base.Add(time.Minute), base.Add(2*time.Minute)
	produceAt(t, f, before, base)
	produceAt(t, f, inside, t1)
	r := f.start(t, f.config())
	f.waitCommitted(t, 60*time.Second)
	r.stop()
	f.assertExactlyOnce(t, 2*n)
	produceAt(t, f, after, t2) // the group has not read these
	offsets := f.groupOffsets(t)

	// (b) Markers in place: nothing reaches the edge.
	out := f.replayWindow(t, t1, t2)
	if !strings.Contains(out, fmt.Sprintf("total: %d records replayed, 0 sent, %d skipped by dedupe", n, n)) {
		t.Fatalf("replay with markers: want %d replayed, 0 sent, %d skipped:\n%s", n, n, out)
	}
	f.assertExactlyOnce(t, 2*n)

	// (a) Markers wiped, fresh streams (no duplicate window left).
	ctx := context.Background()
	if err := rd.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range topicsedge.Streams(f.region) {
		if err := f.js.DeleteStream(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := edge.EnsureStreams(ctx, f.js, f.region, edge.StreamOptions{Duplicates: time.Hour, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	for round := 1; round <= 2; round++ {
		out = f.replayWindow(t, t1, t2)
		sent := n
		if round == 2 {
			sent = 0
		}
		if !strings.Contains(out, fmt.Sprintf("total: %d records replayed, %d sent, %d skipped by dedupe", n, sent, n-sent)) {
			t.Fatalf("round %d: want %d replayed, %d sent:\n%s", round, n, sent, out)
		}
		c := f.counts(t)
		if c.Total != n || c.Distinct != n || !maps.Equal(boolKeys(c.PerID), ids(inside)) {
			t.Fatalf("round %d: edge holds %d (%d distinct), want exactly the %d records of the window once", round, c.Total, c.Distinct, n)
		}
	}
	if got := f.groupOffsets(t); !maps.Equal(got, offsets) {
		t.Fatalf("the replay moved the group's offsets:\n%v\n%v", offsets, got)
	}

	// The group resumes where it was: the records after T2, once.
	r = f.start(t, f.config())
	f.waitCommitted(t, 60*time.Second)
	r.stop()
	c := f.counts(t)
	want := ids(inside)
	maps.Copy(want, ids(after))
	if c.Total != 2*n || !maps.Equal(boolKeys(c.PerID), want) {
		t.Fatalf("after the group resumed the edge holds %d (%d distinct), want the window's and the later records once each", c.Total, c.Distinct)
	}
}

func boolKeys(m map[string]int) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// TestReplayWindowRefusesBadWindows: errors name the flag and nothing runs.
func TestReplayWindowRefusesBadWindows(t *testing.T) {
	t.Parallel()
	base := app.Config{Region: "us-east-1", RedisURL: "redis://127.0.0.1:1", NATSURL: "nats://127.0.0.1:1"}
	base.Kafka.Brokers = []string{"127.0.0.1:1"}
	tests := []struct {
		from, to, want string
	}{
		{"2026-11-24T08:00:00Z", "2026-11-24T08:00:00Z", "--to"},
		{"2026-11-24T09:00:00Z", "2026-11-24T08:00:00Z", "--to"},
		{"2026-11-24T08:00:00Z", "yesterday", "--to"},
		{"2026-11-24 08:00", "2026-11-24T09:00:00Z", "--from"},
		{"", "2026-11-24T09:00:00Z", "--from"},
	}
	for _, tt := range tests {
		t.Run(tt.from+" "+tt.to, func(t *testing.T) {
			var out bytes.Buffer
			err := app.Replay(context.Background(), app.ReplayConfig{Config: base, From: tt.from, To: tt.to}, &out, zap.NewNop(), nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Replay = %v, want an error naming %s", err, tt.want)
			}
			if out.Len() > 0 {
				t.Fatalf("a refused replay printed:\n%s", out.String())
			}
		})
	}
}
