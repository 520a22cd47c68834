package store

import (
	"context"
	"maps"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/testenv"
	"backinstock/topics/userdata"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func TestMarkersAndHeldSet(t *testing.T) {
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	defer rdb.Close()
	s := New(rdb, testenv.Unique(t, "r"), time.Hour)

	refs := []Ref{{"u1", "sku1", 1, "email"}, {"u2", "sku1", 1, "email"}}
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
	key := userdata.NotifierSentSetKey(s.region, "sku1", 1, "email", userdata.SentShard("u1"))
	if ttl := rdb.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("marker set TTL %v", ttl)
	}
	// The same user about another episode, SKU or channel is another
	// notification.
	for _, other := range []Ref{{"u1", "sku1", 2, "email"}, {"u1", "sku2", 1, "email"}, {"u1", "sku1", 1, "sms"}} {
		if sent, _ := s.Sent(ctx, []Ref{other}); sent[0] {
			t.Fatalf("%+v counts as sent after marking %+v", other, refs[0])
		}
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

// TestSentOverSetsAndChunks: a batch spanning several sets (episodes,
// channels, shards), one set with more members than one command takes,
// gets every answer in its place, through a single-node and a sharded
// client alike.
func TestSentOverSetsAndChunks(t *testing.T) {
	ctx := context.Background()
	single, ring := env.Redis(t).SingleAndSharded(t)
	region := testenv.Unique(t, "r")
	// Most refs are one episode and channel, so each shard's set of it
	// holds about 3 commands' worth of members; the rest spread over
	// other episodes and channels.
	big := 3 * memberChunk * userdata.SentShards
	refs := make([]Ref, big+701)
	var marked []Ref
	perShard := map[int]int{}
	for i := range refs {
		refs[i] = Ref{UserID: "u" + strconv.Itoa(i), SKU: "sku", Episode: 1, Channel: "email"}
		if i >= big {
			refs[i].Episode, refs[i].Channel = int64(2+i%2), []string{"email", "sms", "web"}[i%3]
		} else {
			perShard[userdata.SentShard(refs[i].UserID)]++
		}
		if i%3 == 0 {
			marked = append(marked, refs[i])
		}
	}
	if most := slices.Max(slices.Collect(maps.Values(perShard))); most <= 2*memberChunk {
		t.Fatalf("the biggest set has %d members: the test needs more than two chunks", most)
	}
	if err := New(single, region, time.Hour).MarkSent(ctx, marked); err != nil {
		t.Fatal(err)
	}
	for name, rdb := range map[string]redis.UniversalClient{"single": single, "ring": ring} {
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
	// The marked refs (i%3 == 0) are email of episode 1, and email of
	// episodes 2 and 3: three sets per shard, each with the marker TTL.
	keys, err := single.Keys(ctx, "ntf:{"+region+"|*}:sent:*").Result()
	if err != nil || len(keys) != 3*userdata.SentShards {
		t.Fatalf("%d marker sets (%v), want %d", len(keys), err, 3*userdata.SentShards)
	}
	for _, k := range keys {
		if ttl := single.TTL(ctx, k).Val(); ttl <= 0 || ttl > time.Hour {
			t.Fatalf("%s: TTL %v", k, ttl)
		}
	}
}
