package store

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/inventory/internal/stock"
	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
)

// stalledStore is a Store on a private redis-server the test can pause,
// through the production client (shared/redisconn: no retries, context
// deadlines on the socket).
func stalledStore(t *testing.T) (*Store, *testenv.Redis, redis.UniversalClient) {
	t.Helper()
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if r.Embedded() {
		t.Skip("no redis-server on PATH: the embedded stand-in cannot be paused")
	}
	rdb, err := redisconn.New(context.Background(), r.URL(), redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := New(rdb, Options{Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, r, rdb
}

// TestTimedOutApplyRunsOnceAndTheRetryLearnsIt: an Apply that times out
// against a paused Redis fails within its deadline; the paused server runs
// its script when it resumes; a retry with the same key applies nothing
// and answers the first run's results, marked replayed.
func TestTimedOutApplyRunsOnceAndTheRetryLearnsIt(t *testing.T) {
	s, r, rdb := stalledStore(t)
	ctx := context.Background()
	sku := "stall-sku"
	ups := []stock.Update{{SKU: sku, Region: "us-east-1", Quantity: 0}, {SKU: sku, Region: "us-east-1", Quantity: 7}}
	// A connection ready in the pool, as a serving process has: the script
	// is then sent before the pause is noticed (a new connection would stall
	// in its handshake, and nothing would be sent).
	if _, err := s.Apply(ctx, time.Now(), []stock.Update{{SKU: "warm", Region: "us-east-1", Quantity: 1}}, ""); err != nil {
		t.Fatal(err)
	}
	before := rdb.XLen(ctx, OutboxKey(s.ShardOf(sku))).Val()
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	t0 := time.Now()
	_, err := s.Apply(cctx, time.Now(), ups, "k1")
	took := time.Since(t0)
	cancel()
	if err == nil {
		t.Fatal("Apply succeeded against a paused Redis")
	}
	if took > 300*time.Millisecond+stallSlack {
		t.Fatalf("Apply gave up after %s", took)
	}
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	again, err := s.Apply(ctx, time.Now(), ups, "k1")
	if err != nil {
		t.Fatal(err)
	}
	want := Result{SKU: sku, Region: "us-east-1", Quantity: 7, Previous: 0, Episode: 1, Restock: true, Replayed: true}
	if again[1] != want {
		t.Fatalf("retry answered %+v, want the first run's %+v", again[1], want)
	}
	if n := rdb.XLen(ctx, OutboxKey(s.ShardOf(sku))).Val() - before; n != 2 {
		t.Fatalf("%d outbox entries, want 2 (one per update, applied once)", n)
	}
}

// TestLateReleaseKeepsTheRetrysAnswer: the release of a failed attempt
// that reaches Redis after a retry stored its answer removes nothing, so a
// third attempt still gets the stored answer.
func TestLateReleaseKeepsTheRetrysAnswer(t *testing.T) {
	s, _, _ := stalledStore(t)
	ctx := context.Background()
	now := time.Now()
	first, err := s.Begin(ctx, now.Add(-2*time.Second), now.Add(-time.Second), "k2", "h")
	if err != nil || first.State != Proceed {
		t.Fatalf("first claim: %+v %v", first, err)
	}
	retry, err := s.Begin(ctx, now, now.Add(time.Second), "k2", "h")
	if err != nil || retry.State != Proceed {
		t.Fatalf("retry's claim after the first attempt's deadline: %+v %v", retry, err)
	}
	if err := s.Abandon(ctx, "k2", first); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Begin(ctx, now, now.Add(time.Second), "k2", "h"); err != nil || c.State != Busy {
		t.Fatalf("the first attempt's release removed the retry's claim: %+v %v", c, err)
	}
	if err := s.Finish(ctx, "k2", Stored{Status: 200, Body: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(ctx, "k2", first); err != nil {
		t.Fatal(err)
	}
	if err := s.Abandon(ctx, "k2", retry); err != nil {
		t.Fatal(err)
	}
	c, err := s.Begin(ctx, now, now.Add(time.Second), "k2", "h")
	if err != nil || c.State != Done || string(c.Stored.Body) != "ok" {
		t.Fatalf("after late releases: %+v %v, want the stored answer", c, err)
	}
}
