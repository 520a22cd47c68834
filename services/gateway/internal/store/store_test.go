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

// TestRenew: after a long wait the holder renews its claim: still its own
// → extended; lapsed and free → taken back; lapsed and claimed by another
// sender → Busy; delivered meanwhile → Done with the marker.
func TestRenew(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t, 300*time.Millisecond)
	key := func(n string) string {
		keys, err := rdb.Keys(ctx, "*:delivered:"+n).Result()
		if err != nil || len(keys) != 1 {
			t.Fatalf("keys of %s: %v, %v", n, keys, err)
		}
		return keys[0]
	}

	own, _ := s.Claim(ctx, "u1", "own")
	time.Sleep(200 * time.Millisecond)
	if c, err := s.Renew(ctx, own); err != nil || c.State != store.Claimed {
		t.Fatalf("own claim: %v, %v", c.State, err)
	}
	if ttl := rdb.PTTL(ctx, key("own")).Val(); ttl < 250*time.Millisecond {
		t.Errorf("renewed claim lives %s more, want about 300ms", ttl)
	}

	lapsed, _ := s.Claim(ctx, "u1", "lapsed")
	k := key("lapsed")
	rdb.Del(ctx, k) // as if it had lapsed
	if c, err := s.Renew(ctx, lapsed); err != nil || c.State != store.Claimed {
		t.Fatalf("lapsed, free: %v, %v", c.State, err)
	}
	if other, _ := s.Claim(ctx, "u1", "lapsed"); other.State != store.Busy {
		t.Errorf("the taken-back claim does not hold: %v", other.State)
	}

	taken, _ := s.Claim(ctx, "u1", "taken")
	rdb.Del(ctx, key("taken"))
	if other, _ := s.Claim(ctx, "u1", "taken"); other.State != store.Claimed {
		t.Fatal(other.State)
	}
	if c, err := s.Renew(ctx, taken); err != nil || c.State != store.Busy {
		t.Errorf("lapsed, claimed by another: %v, %v", c.State, err)
	}

	done, _ := s.Claim(ctx, "u1", "done")
	rdb.Del(ctx, key("done"))
	other, _ := s.Claim(ctx, "u1", "done")
	d := store.Delivered{Provider: "twilio", ProviderMessageID: "SM1", Attempt: 1, At: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := s.MarkDelivered(ctx, other, d); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Renew(ctx, done); err != nil || c.State != store.Done || c.Delivered != d {
		t.Errorf("delivered by another: %v %+v, %v", c.State, c.Delivered, err)
	}
}

func TestRedisDown(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	s := store.New(rdb, "r1", time.Minute, time.Hour)
	if _, err := s.Claim(context.Background(), "u1", "n1"); err == nil {
		t.Error("Claim succeeded without Redis")
	}
}

func TestDevicesSent(t *testing.T) {
	ctx := context.Background()
	s, rdb := newStore(t, time.Minute)
	if m, err := s.SentDevices(ctx, "u1", "n1"); err != nil || len(m) != 0 {
		t.Fatalf("before any send: %v, %v", m, err)
	}
	for _, d := range [][2]string{{"phone", "projects/p/messages/1"}, {"tablet", "projects/p/messages/2"}, {"phone", "projects/p/messages/1"}} {
		if err := s.MarkDeviceSent(ctx, "u1", "n1", d[0], d[1]); err != nil {
			t.Fatal(err)
		}
	}
	m, err := s.SentDevices(ctx, "u1", "n1")
	if err != nil || len(m) != 2 || m["phone"] != "projects/p/messages/1" || m["tablet"] != "projects/p/messages/2" {
		t.Fatalf("sent devices %v, %v", m, err)
	}
	if m, _ := s.SentDevices(ctx, "u2", "n1"); len(m) != 0 {
		t.Errorf("another user's notification of the same id: %v", m)
	}
	// The hash lives as long as a delivered marker.
	keys, err := rdb.Keys(ctx, "gwy:*|u1}:devices:n1").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("keys %v, %v", keys, err)
	}
	if ttl := rdb.TTL(ctx, keys[0]).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("ttl %s, want the marker TTL (1h)", ttl)
	}
}
