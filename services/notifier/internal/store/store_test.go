package store

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func TestMarkersAndHeldSet(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	defer rdb.Close()
	s := New(rdb, testenv.Unique(t, "r"), time.Hour)

	refs := []Ref{{"u1", "n1"}, {"u2", "n2"}}
	sent, err := s.Sent(ctx, refs)
	if err != nil || sent[0] || sent[1] {
		t.Fatalf("Sent before marking = %v, %v", sent, err)
	}
	if err := s.MarkSent(ctx, refs[:1]); err != nil {
		t.Fatal(err)
	}
	if sent, _ = s.Sent(ctx, refs); !sent[0] || sent[1] {
		t.Fatalf("Sent after marking n1 = %v", sent)
	}
	if ttl := rdb.TTL(ctx, s.markerKey(refs[0])).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("marker TTL %v", ttl)
	}

	t0 := time.Unix(1_700_000_000, 0)
	if err := s.Hold(ctx, []Held{{ID: "h1", Release: t0, Payload: []byte("one")}, {ID: "h2", Release: t0.Add(time.Hour), Payload: []byte("two")}}); err != nil {
		t.Fatal(err)
	}
	// A replay holds h1 again with a later release: the first one stands.
	if err := s.Hold(ctx, []Held{{ID: "h1", Release: t0.Add(2 * time.Hour), Payload: []byte("one")}}); err != nil {
		t.Fatal(err)
	}
	due, err := s.Due(ctx, t0.Add(time.Minute), 10)
	if err != nil || len(due) != 1 || due[0].ID != "h1" || string(due[0].Payload) != "one" || !due[0].Release.Equal(t0) {
		t.Fatalf("Due = %+v, %v", due, err)
	}
	if err := s.Release(ctx, []string{"h1"}); err != nil {
		t.Fatal(err)
	}
	if n, _ := s.HeldCount(ctx); n != 1 {
		t.Fatalf("held after release = %d, want 1", n)
	}
	if due, _ := s.Due(ctx, t0.Add(90*time.Minute), 10); len(due) != 1 || due[0].ID != "h2" {
		t.Fatalf("Due later = %+v", due)
	}
}

// TestSentPathsAgree checks the single-node MGET lookup (over several
// chunks) and the per-key EXISTS pipeline a sharded client gets.
func TestSentPathsAgree(t *testing.T) {
	ctx := context.Background()
	addr := env.Redis(t).Addr
	single := redis.NewClient(&redis.Options{Addr: addr})
	defer single.Close()
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": addr}})
	defer ring.Close()
	region := testenv.Unique(t, "r")
	refs := make([]Ref, 2*mgetChunk+7)
	var marked []Ref
	for i := range refs {
		refs[i] = Ref{UserID: "u" + strconv.Itoa(i), NotificationID: "n" + strconv.Itoa(i)}
		if i%3 == 0 {
			marked = append(marked, refs[i])
		}
	}
	if err := New(single, region, time.Hour).MarkSent(ctx, marked); err != nil {
		t.Fatal(err)
	}
	for name, rdb := range map[string]redis.UniversalClient{"mget": single, "exists": ring} {
		sent, err := New(rdb, region, time.Hour).Sent(ctx, refs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, s := range sent {
			if s != (i%3 == 0) {
				t.Fatalf("%s: Sent[%d] = %v, want %v", name, i, s, i%3 == 0)
			}
		}
	}
}
