package relay

import (
	"context"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap/zaptest"

	"backinstock/services/inventory/internal/stock"
	"backinstock/services/inventory/internal/store"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

var catalogOnce sync.Once

func applyCatalogOnce(t *testing.T, brokers []string) {
	t.Helper()
	catalogOnce.Do(func() {
		adm, err := kafka.NewClusterAdmin(kafka.Config{Brokers: brokers})
		if err != nil {
			t.Fatal(err)
		}
		defer adm.Close()
		cat, _ := catalog.Default()
		ctx := context.Background()
		plan, err := catalog.Plan(ctx, adm, cat.ForBrokers(3), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := catalog.Apply(ctx, adm, plan); err != nil {
			t.Fatal(err)
		}
	})
}

func runRelay(t *testing.T, st *store.Store, brokers []string) {
	t.Helper()
	r, err := New(st, kafka.Config{Brokers: brokers}, Options{LeaseTTL: time.Second}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	testenv.Eventually(t, 30*time.Second, func() bool { n, _, _ := Backlog(ctx, st); return n == 0 }, "outbox published")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestCrashBetweenAckAndTrim simulates a process that died after Kafka
// acknowledged a batch and before the trim: the batch's entries are put back
// into the outbox with their ids, and a new relay must not publish them again.
func TestCrashBetweenAckAndTrim(t *testing.T) {
	k := env.Kafka(t)
	applyCatalogOnce(t, k.Brokers)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr, DB: 3})
	t.Cleanup(func() { _ = rdb.Close() })
	_ = rdb.FlushDB(ctx).Err()
	st, err := store.New(rdb, store.Options{Shards: 1, MinQuantity: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Load(ctx); err != nil {
		t.Fatal(err)
	}
	p := testenv.Unique(t, "crash")
	var ups []stock.Update
	for i := range 50 {
		ups = append(ups, stock.Update{SKU: p + "-" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + "-" + itoa(i), Region: "us-east-1", Quantity: 3})
	}
	if _, err := st.Apply(ctx, time.Now(), ups, ""); err != nil {
		t.Fatal(err)
	}
	key := store.OutboxKey(0)
	saved, err := rdb.XRange(ctx, key, "-", "+").Result()
	if err != nil || len(saved) != 50 {
		t.Fatalf("outbox: %d entries, %v", len(saved), err)
	}
	runRelay(t, st, k.Brokers)
	// Put the acknowledged batch back, as if the trim never happened.
	if err := rdb.Do(ctx, "XSETID", key, "0-1").Err(); err != nil {
		t.Fatal(err)
	}
	for _, m := range saved {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: key, ID: m.ID, Values: m.Values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	runRelay(t, st, k.Brokers)
	counts := countRecords(t, k.Brokers, catalog.Restock, p)
	if len(counts) != 50 {
		t.Fatalf("%d restocks, want 50", len(counts))
	}
	for h, n := range counts {
		if n != 1 {
			t.Errorf("%s published %d times", h, n)
		}
	}
}

// TestTwoRelaysOneOutbox: two replicas' relays share one outbox; the shard
// lease lets one publish, so every record arrives once.
func TestTwoRelaysOneOutbox(t *testing.T) {
	k := env.Kafka(t)
	applyCatalogOnce(t, k.Brokers)
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr, DB: 4})
	t.Cleanup(func() { _ = rdb.Close() })
	_ = rdb.FlushDB(ctx).Err()
	st, err := store.New(rdb, store.Options{Shards: 2, MinQuantity: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Load(ctx); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		r, err := New(st, kafka.Config{Brokers: k.Brokers}, Options{LeaseTTL: time.Second, Batch: 7}, zaptest.NewLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := r.Run(rctx); err != nil {
				t.Error(err)
			}
		})
	}
	p := testenv.Unique(t, "two")
	for round := range 4 {
		var ups []stock.Update
		for i := range 100 {
			ups = append(ups, stock.Update{SKU: p + "-" + itoa(i), Region: "us-east-1", Quantity: int64(round % 2 * 3)})
		}
		if _, err := st.Apply(ctx, time.Now(), ups, ""); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 30*time.Second, func() bool { n, _, _ := Backlog(ctx, st); return n == 0 }, "outbox published")
	cancel()
	wg.Wait()
	counts := countRecords(t, k.Brokers, catalog.Stock, p)
	if len(counts) != 400 {
		t.Fatalf("%d stock records, want 400", len(counts))
	}
	for h, n := range counts {
		if n != 1 {
			t.Errorf("%s published %d times", h, n)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// countRecords reads topic to its end and counts records per outbox header
// among keys starting with prefix.
func countRecords(t *testing.T, brokers []string, topic, prefix string) map[string]int {
	t.Helper()
	cl, err := sarama.NewClient(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	parts, _ := cl.Partitions(topic)
	out := map[string]int{}
	var mu sync.Mutex
	for _, part := range parts {
		end, _ := cl.GetOffset(topic, part, sarama.OffsetNewest)
		if end == 0 {
			continue
		}
		pc, err := cons.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			if strings.HasPrefix(string(m.Key), prefix) {
				for _, h := range m.Headers {
					if string(h.Key) == HeaderOutbox {
						mu.Lock()
						out[string(h.Value)]++
						mu.Unlock()
					}
				}
			}
			if m.Offset+1 >= end {
				break
			}
		}
		pc.AsyncClose()
	}
	return out
}
