package store_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/gateway/internal/store"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func newStore(t *testing.T, claimTTL time.Duration) (*store.Store, *redis.Client) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return store.New(rdb, testenv.Unique(t, "r"), claimTTL, time.Hour), rdb
}

func TestClaimThenMark(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, time.Minute)

	first, err := s.Claim(ctx, "u1", "n1")
	if err != nil || first.State != store.Claimed {
		t.Fatalf("first claim: %v, %v", first.State, err)
	}
	second, err := s.Claim(ctx, "u1", "n1")
	if err != nil || second.State != store.Busy {
		t.Fatalf("second claim while the first holds it: %v, %v", second.State, err)
	}
	// Releasing a claim one does not hold changes nothing.
	if err := s.Release(ctx, second); err != nil {
		t.Fatal(err)
	}
	if c, _ := s.Claim(ctx, "u1", "n1"); c.State != store.Busy {
		t.Fatalf("after a foreign release: %v", c.State)
	}

	d := store.Delivered{Provider: "smtp", ProviderMessageID: "<n1@shop.example>", Attempt: 2, At: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	if err := s.MarkDelivered(ctx, first, d); err != nil {
		t.Fatal(err)
	}
	done, err := s.Claim(ctx, "u1", "n1")
	if err != nil || done.State != store.Done || done.Delivered != d {
		t.Fatalf("after the marker: %v %+v, %v", done.State, done.Delivered, err)
	}
	// Another user's notification of the same id is another key.
	if c, _ := s.Claim(ctx, "u2", "n1"); c.State != store.Claimed {
		t.Errorf("u2: %v", c.State)
	}
}

func TestReleaseLetsTheRetryClaim(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, time.Minute)
	c, err := s.Claim(ctx, "u1", "n1")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	if again, err := s.Claim(ctx, "u1", "n1"); err != nil || again.State != store.Claimed {
		t.Errorf("after release: %v, %v", again.State, err)
	}
}

func TestClaimLapses(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t, 200*time.Millisecond)
	if c, err := s.Claim(ctx, "u1", "n1"); err != nil || c.State != store.Claimed {
		t.Fatal(c.State, err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		c, err := s.Claim(ctx, "u1", "n1")
		return err == nil && c.State == store.Claimed
	}, "the claim of a gateway that died never lapsed")
}

func TestRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	s := store.New(rdb, "r1", time.Minute, time.Hour)
	if _, err := s.Claim(context.Background(), "u1", "n1"); err == nil {
		t.Error("Claim succeeded without Redis")
	}
}
