package store

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/inventory/internal/stock"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func newStoreB(b *testing.B) (*Store, redis.UniversalClient) {
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(b).Addr, DB: 9})
	b.Cleanup(func() { _ = rdb.Close() })
	s, err := New(rdb, Options{Shards: 4, MinQuantity: 1})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		b.Fatal(err)
	}
	return s, rdb
}

func newStore(t *testing.T, min int64) (*Store, redis.UniversalClient) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	s, err := New(rdb, Options{Shards: 2, MinQuantity: min})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, rdb
}

type step struct {
	quantity    int64
	wantRestock bool
	wantEpisode int64
}

// TestTransitionsInRedis runs the transition rules through the Lua script:
// each case is a fresh sku and a sequence of levels.
func TestTransitionsInRedis(t *testing.T) {
	tests := []struct {
		name  string
		min   int64
		steps []step
	}{
		{"0 to 5 restocks", 1, []step{{0, false, 0}, {5, true, 1}}},
		{"first positive level of a new sku restocks", 1, []step{{5, true, 1}}},
		{"5 to 7 does not", 1, []step{{5, true, 1}, {7, false, 1}}},
		{"3 to 0 then 0 to 2 is a new episode", 1, []step{{3, true, 1}, {0, false, 1}, {2, true, 2}}},
		{"repeated zeros are one sell-out", 1, []step{{3, true, 1}, {0, false, 1}, {0, false, 1}, {4, true, 2}, {9, false, 2}}},
		{"below the minimum waits", 3, []step{{0, false, 0}, {2, false, 0}, {3, true, 1}}},
		{"never sold out never restocks at the minimum", 3, []step{{5, true, 1}, {1, false, 1}, {4, false, 1}, {0, false, 1}, {6, true, 2}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rdb := newStore(t, tt.min)
			ctx := context.Background()
			sku := testenv.Unique(t, "sku")
			out := OutboxKey(s.ShardOf(sku))
			before := rdb.XLen(ctx, out).Val()
			var prev int64
			var changes int64
			for i, st := range tt.steps {
				res, err := s.Apply(ctx, time.Now(), []stock.Update{{SKU: sku, Region: "us-east-1", Quantity: st.quantity}}, "")
				if err != nil {
					t.Fatal(err)
				}
				r := res[0]
				if r.Restock != st.wantRestock || r.Episode != st.wantEpisode || r.Previous != prev {
					t.Fatalf("step %d (%d): got %+v, want restock=%v episode=%d previous=%d", i, st.quantity, r, st.wantRestock, st.wantEpisode, prev)
				}
				// The Go rule and the script agree.
				if i == 0 || st.quantity != prev || r.Restock {
					changes++
				}
				prev = st.quantity
			}
			if got := rdb.XLen(ctx, out).Val() - before; got != changes {
				t.Fatalf("outbox grew by %d entries, want %d (one per level change)", got, changes)
			}
		})
	}
}

// TestScriptMatchesRule drives random sequences through both the script and
// stock.Apply.
func TestScriptMatchesRule(t *testing.T) {
	for _, min := range []int64{1, 3} {
		s, _ := newStore(t, min)
		ctx := context.Background()
		sku := testenv.Unique(t, "sku")
		cur := stock.Initial()
		levels := []int64{0, 2, 4, 0, 0, 1, 3, 7, 0, 5, 2, 0, 3, 3, 0, 1}
		for i, q := range levels {
			want := stock.Apply(cur, q, min)
			res, err := s.Apply(ctx, time.Now(), []stock.Update{{SKU: sku, Region: "eu-west-1", Quantity: q}}, "")
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Restock != want.Restock || res[0].Episode != want.Next.Episode {
				t.Fatalf("min %d step %d (%d): script %+v, rule %+v", min, i, q, res[0], want)
			}
			cur = want.Next
		}
	}
}

// TestChunkIdempotency: re-running a request's chunks answers the stored
// results and applies nothing again.
func TestChunkIdempotency(t *testing.T) {
	s, rdb := newStore(t, 1)
	ctx := context.Background()
	sku := testenv.Unique(t, "sku")
	ups := []stock.Update{{SKU: sku, Region: "us-east-1", Quantity: 0}, {SKU: sku, Region: "us-east-1", Quantity: 4}}
	first, err := s.Apply(ctx, time.Now(), ups, "k1")
	if err != nil {
		t.Fatal(err)
	}
	n := rdb.XLen(ctx, OutboxKey(s.ShardOf(sku))).Val()
	again, err := s.Apply(ctx, time.Now(), ups, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if first[0].Replayed || first[1].Replayed || !again[0].Replayed || !again[1].Replayed {
		t.Fatalf("replayed marks: first %+v, retry %+v", first, again)
	}
	again[1].Replayed = false
	if first[1] != again[1] || !again[1].Restock {
		t.Fatalf("retry answered %+v, first %+v", again, first)
	}
	if m := rdb.XLen(ctx, OutboxKey(s.ShardOf(sku))).Val(); m != n {
		t.Fatalf("retry appended %d outbox entries", m-n)
	}
}
