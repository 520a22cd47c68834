package lease_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/lease"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// TestOneHolderAtATime: a free lease is taken, renewed by its token only,
// released by its token only, held again by the same token after it lapsed
// when nobody took it, and a lapsed holder cannot hold, renew or release
// what another token took meanwhile; Renew never takes a free lease back.
func TestOneHolderAtATime(t *testing.T) {
	r := env.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	ctx := context.Background()
	key := testenv.Unique(t, "lease")
	if a, b := lease.Token(), lease.Token(); a == b {
		t.Fatalf("two tokens alike: %s", a)
	}
	hold := func(l lease.Lease) bool {
		t.Helper()
		ok, err := l.Hold(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	a := lease.New(rdb, key, lease.Token(), time.Minute)
	b := lease.New(rdb, key, lease.Token(), time.Minute)
	if !hold(a) || hold(b) || !hold(a) {
		t.Fatal("a takes and renews, b is refused")
	}
	if err := b.Release(ctx); err != nil || rdb.Get(ctx, key).Val() != a.Token {
		t.Fatalf("b released a's lease: %v", err)
	}
	if err := a.Release(ctx); err != nil || rdb.Exists(ctx, key).Val() != 0 {
		t.Fatalf("a's release left the key: %v", err)
	}
	if !hold(b) {
		t.Fatal("b could not take the released lease")
	}
	_ = b.Release(ctx)

	// Lapsed: taken back by the same token when free; not when taken.
	short := lease.New(rdb, key, lease.Token(), 50*time.Millisecond)
	if !hold(short) {
		t.Fatal("short lease not taken")
	}
	time.Sleep(120 * time.Millisecond)
	if !hold(short) {
		t.Fatal("a lapsed lease nobody took was not taken back")
	}
	time.Sleep(120 * time.Millisecond)
	if !hold(b) || hold(short) {
		t.Fatal("after the lapse b takes it and the lapsed holder cannot renew")
	}
	if err := short.Release(ctx); err != nil || rdb.Get(ctx, key).Val() != b.Token {
		t.Fatalf("the lapsed holder released b's lease: %v", err)
	}
	// Renew extends only while held: not after a lapse, even when free.
	if ok, err := b.Renew(ctx); err != nil || !ok {
		t.Fatalf("b could not renew its lease: %v", err)
	}
	if ok, _ := short.Renew(ctx); ok {
		t.Fatal("the lapsed holder renewed b's lease")
	}
	_ = b.Release(ctx)
	if ok, _ := b.Renew(ctx); ok || rdb.Exists(ctx, key).Val() != 0 {
		t.Fatal("Renew took a free lease back")
	}
	if !hold(b) {
		t.Fatal("b could not take the lease again")
	}
	if ttl := rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("lease TTL %s, want (0, 1m]", ttl)
	}
}
