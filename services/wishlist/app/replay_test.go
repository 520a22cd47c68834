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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"backinstock/services/wishlist/app"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// produceRestockAt writes a restock with the record timestamp at.
func produceRestockAt(t *testing.T, kcfg kafka.Config, ev events.RestockEvent, at time.Time) {
	t.Helper()
	data, err := events.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	p, err := kafka.NewProducer(kcfg, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m := &sarama.ProducerMessage{Topic: catalog.Restock, Key: sarama.StringEncoder(ev.SKU), Value: sarama.ByteEncoder(data), Timestamp: at}
	if err := p.SendAll(context.Background(), []*sarama.ProducerMessage{m}); err != nil {
		t.Fatal(err)
	}
}

func fanoutOffsets(t *testing.T, kcfg kafka.Config, region string) map[int32]int64 {
	t.Helper()
	cl := newClient(t, kcfg)
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := cl.Partitions(catalog.Restock)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := adm.ListConsumerGroupOffsets("fanout."+region, map[string][]int32{catalog.Restock: parts})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		if b := resp.GetBlock(catalog.Restock, p); b != nil {
			out[p] = b.Offset
		}
	}
	return out
}

// TestReplayFansOutTheWindowAgainOnce: three restocks stamped before, inside
// and after [T1, T2); the group has fanned out the first two and is stopped
// before the third. The replay produces the window's restock's
// notifications once more (the group's done marker notwithstanding) and
// nothing for the others; run again it produces nothing (its own
// checkpoints). The group's offsets are unchanged, so the restarted group
// fans out the later restock, once.
func TestReplayFansOutTheWindowAgainOnce(t *testing.T) {
	kcfg := privateKafka(t)
	r := env.Redis(t)
	cfg := baseConfig(t, kcfg, r.URL())
	c := client{t: t, base: startServe(t, cfg)}
	const region = "us-east-1"
	skus := map[string]string{}
	for _, w := range []string{"before", "inside", "after"} {
		skus[w] = fmt.Sprintf("%s-%s", strings.ToLower(t.Name()[:10]), w)
		for i := range 3 {
			c.putEntry(fmt.Sprintf("%s-u%d", skus[w], i), skus[w], region, "app", "email")
		}
	}
	base := time.Now().Add(-10 * time.Minute).Truncate(time.Millisecond)
	t1, t2 := base.Add(time.Minute), base.Add(2*time.Minute)
	produceRestockAt(t, kcfg, restock(skus["before"], region, 1, 5, nil), base)
	produceRestockAt(t, kcfg, restock(skus["inside"], region, 1, 5, nil), t1.Add(time.Second))
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	_, stop := startFanout(t, cfg, region)
	for _, w := range []string{"before", "inside"} {
		waitDone(t, rdb, events.RestockEventID(skus[w], region, 1), region, 60*time.Second)
	}
	stop()
	produceRestockAt(t, kcfg, restock(skus["after"], region, 1, 5, nil), t2.Add(time.Second))
	offsets := fanoutOffsets(t, kcfg, region)

	// A short fetch wait: testenv.ReadTopic reads partition after
	// partition, each behind a broker's long poll otherwise (500 ms).
	sc, err := kcfg.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	sc.Consumer.MaxWaitTime = 20 * time.Millisecond
	cl, err := sarama.NewClient(kcfg.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// notified counts per region/user/channel what the notify topics of
	// the two channels wishlisted hold (one read of each per call).
	notified := func() map[string]int {
		got := map[string]int{}
		for _, ch := range []string{"app", "email"} {
			testenv.ReadTopic(t, cl, catalog.Notify(region, ch), func(m *sarama.ConsumerMessage) {
				n, err := events.DecodeNotification(m.Value)
				if err != nil {
					t.Fatal(err)
				}
				got[key(region, "/", n.UserID, "/", ch)]++
			})
		}
		return got
	}
	of := func(all map[string]int, sku string) map[string]int {
		out := map[string]int{}
		for k, n := range all {
			if strings.Contains(k, "/"+sku+"-u") {
				out[k] = n
			}
		}
		return out
	}
	times := func(sku string, n int) map[string]int {
		out := map[string]int{}
		for i := range 3 {
			for _, ch := range []string{"app", "email"} {
				out[key(region, "/", fmt.Sprintf("%s-u%d", sku, i), "/", ch)] = n
			}
		}
		return out
	}
	replay := func() string {
		rc := cfg
		rc.Region = region
		rc.ReplayFrom, rc.ReplayTo = t1.Format(time.RFC3339Nano), t2.Format(time.RFC3339Nano)
		var out bytes.Buffer
		if err := app.RunReplay(context.Background(), rc, &out, testLogger(t), prometheus.NewRegistry()); err != nil {
			t.Fatalf("replay: %v\n%s", err, out.String())
		}
		t.Logf("replay:\n%s", out.String())
		return out.String()
	}
	for round, wantProduced := range []int{6, 0} {
		out := replay()
		if !strings.Contains(out, fmt.Sprintf("total: 1 records replayed (restocks of every region; those of %s fanned out), %d notifications produced", region, wantProduced)) {
			t.Fatalf("round %d: want 1 record replayed and %d produced:\n%s", round+1, wantProduced, out)
		}
		all := notified()
		if got := of(all, skus["inside"]); !maps.Equal(got, times(skus["inside"], 2)) {
			t.Fatalf("round %d: the window's restock: %v, want each notification twice (once by the group, once by the replay)", round+1, sortedKeys(got))
		}
		if got := of(all, skus["before"]); !maps.Equal(got, times(skus["before"], 1)) {
			t.Fatalf("round %d: the earlier restock: %v, want each once", round+1, sortedKeys(got))
		}
		if got := of(all, skus["after"]); len(got) != 0 {
			t.Fatalf("round %d: the replay fanned out the restock after T2: %v", round+1, sortedKeys(got))
		}
	}
	if got := fanoutOffsets(t, kcfg, region); !maps.Equal(got, offsets) {
		t.Fatalf("the replay moved group fanout.%s: %v -> %v", region, offsets, got)
	}

	// The group resumes where it was: the restock after T2, once.
	_, stop = startFanout(t, cfg, region)
	waitDone(t, rdb, events.RestockEventID(skus["after"], region, 1), region, 60*time.Second)
	stop()
	if got := of(notified(), skus["after"]); !maps.Equal(got, times(skus["after"], 1)) {
		t.Fatalf("the later restock after the group resumed: %v, want each once", sortedKeys(got))
	}
}

// TestReplayRefusesBadWindows: errors name the flag.
func TestReplayRefusesBadWindows(t *testing.T) {
	cfg := baseConfig(t, kafka.Config{Brokers: []string{"127.0.0.1:1"}}, "redis://127.0.0.1:1")
	cfg.Region = "us-east-1"
	for _, tt := range []struct{ from, to, want string }{
		{"2026-11-24T08:00:00Z", "2026-11-24T08:00:00Z", "--to"},
		{"2026-11-24T08:00:00Z", "", "--to"},
		{"", "2026-11-24T08:00:00Z", "--from"},
		{"last week", "2026-11-24T08:00:00Z", "--from"},
	} {
		cfg.ReplayFrom, cfg.ReplayTo = tt.from, tt.to
		var out bytes.Buffer
		err := app.RunReplay(context.Background(), cfg, &out, zap.NewNop(), nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) || out.Len() > 0 {
			t.Errorf("from %q to %q: %v (printed %q), want an error naming %s", tt.from, tt.to, err, out.String(), tt.want)
		}
	}
}
