package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
	"backinstock/topics/optout"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// openStore is a store on the test's Redis, and a client to look inside.
func openStore(t *testing.T) (*redis.Client, *store.Store) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb, store.New(rdb)
}

// forty wishlist sku in us-east-1: four wishlist times, ten users each,
// inserted out of id order, so pages and segments meet equal scores.
func forty(sku string, base time.Time) []wishes.Entry {
	var puts []wishes.Entry
	for i := range 40 {
		puts = append(puts, wishes.Entry{UserID: fmt.Sprintf("u%02d", (i*7)%40), SKU: sku, Region: "us-east-1", Channels: []string{"app"},
			Since: base.Add(time.Duration(i/10) * time.Millisecond)})
	}
	return puts
}

// writeNew writes entries none of which were there before.
func writeNew(t *testing.T, st *store.Store, puts []wishes.Entry) {
	t.Helper()
	if err := st.Write(context.Background(), puts, nil, make([]*wishes.Entry, len(puts))); err != nil {
		t.Fatal(err)
	}
}

// TestPageCursor pages through wishlisters with many equal wishlist times
// while the wishlister under the cursor (and others) leave and earlier ones
// come and go: every remaining wishlister after the cursor comes exactly
// once, earliest first, ties by user id, and each page's ranks are the
// set's. The cursor carries the rank hint the fan-out passes, so the pages
// after a change before the cursor test that a stale hint is caught.
func TestPageCursor(t *testing.T) {
	rdb, st := openStore(t)
	ctx := context.Background()
	sku := testenv.Unique(t, "sku")
	key := store.UsersKey(sku, "us-east-1")
	base := time.UnixMilli(1_700_000_000_000)
	puts := forty(sku, base)
	writeNew(t, st, puts)
	var want []string
	for _, e := range puts {
		want = append(want, fmt.Sprintf("%d/%s", e.Since.UnixMilli(), e.UserID))
	}
	slices.Sort(want)
	remove := func(user string) {
		t.Helper()
		old := []*wishes.Entry{{UserID: user, SKU: sku, Region: "us-east-1"}}
		if err := st.Write(ctx, nil, []wishes.Entry{{UserID: user, SKU: sku}}, old); err != nil {
			t.Fatal(err)
		}
	}

	var (
		cur     store.Cursor
		got     []string
		seen    []string
		removed = map[string]bool{}
		early   int64
	)
	for page := 0; ; page++ {
		ws, next, err := st.Page(ctx, sku, "us-east-1", cur, nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) == 0 {
			if next != cur {
				t.Fatalf("an empty page moved the cursor from %+v to %+v", cur, next)
			}
			break
		}
		for _, w := range ws {
			if w.Entry == nil || w.Entry.Region != "us-east-1" {
				t.Fatalf("wishlister %s without its entry", w.UserID)
			}
			got = append(got, fmt.Sprintf("%d/%s", w.Entry.Since.UnixMilli(), w.UserID))
			seen = append(seen, w.UserID)
		}
		last := ws[len(ws)-1].UserID
		score, rank := rdb.ZScore(ctx, key, last).Val(), rdb.ZRank(ctx, key, last).Val()
		if next != (store.Cursor{Score: int64(score), Member: last, Next: rank + 1}) {
			t.Fatalf("page %d: next cursor %+v; %s has score %.0f and rank %d", page, next, last, score, rank)
		}
		cur = next
		switch page % 3 {
		case 0:
			// The cursor's own member leaves: the next page must still
			// start right after it.
			remove(last)
			removed[last] = true
		case 1:
			// One before the cursor leaves: the hint is one too far.
			for _, u := range seen {
				if !removed[u] {
					remove(u)
					removed[u] = true
					break
				}
			}
		case 2:
			// One joins before everyone: the hint is one too near. It
			// wished before the cursor, so this fan-out passes it by.
			e := wishes.Entry{UserID: fmt.Sprintf("early%02d", page), SKU: sku, Region: "us-east-1", Channels: []string{"app"}, Since: base.Add(-time.Millisecond)}
			writeNew(t, st, []wishes.Entry{e})
			early++
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged order:\n got %v\nwant %v", got, want)
	}
	if n := rdb.ZCard(ctx, key).Val(); n != int64(40-len(removed))+early {
		t.Fatalf("%d left after %d removals and %d additions", n, len(removed), early)
	}
}

// TestPageHintNeedsTheScore: the cursor's member is still at the hinted
// rank but under a new score (it wished again, after one before it left).
// The rank alone would skip b, which comes after the cursor's old place;
// the anchor's score tells the hint is stale.
func TestPageHintNeedsTheScore(t *testing.T) {
	rdb, st := openStore(t)
	ctx := context.Background()
	sku := testenv.Unique(t, "sku")
	key := store.UsersKey(sku, "us-east-1")
	base := time.UnixMilli(1_700_000_000_000)
	var puts []wishes.Entry
	for i, u := range []string{"a", "x", "b", "c"} {
		puts = append(puts, wishes.Entry{UserID: u, SKU: sku, Region: "us-east-1", Channels: []string{"app"}, Since: base.Add(time.Duration(2*i) * time.Millisecond)})
	}
	writeNew(t, st, puts)
	ws, next, err := st.Page(ctx, sku, "us-east-1", store.Cursor{}, nil, 2)
	if err != nil || len(ws) != 2 || next != (store.Cursor{Score: base.Add(2 * time.Millisecond).UnixMilli(), Member: "x", Next: 2}) {
		t.Fatalf("first page %v, next %+v, %v", ws, next, err)
	}
	// a leaves; x moves between b and c: x keeps rank 1.
	rdb.ZRem(ctx, key, "a")
	rdb.ZAdd(ctx, key, redis.Z{Score: float64(base.Add(5 * time.Millisecond).UnixMilli()), Member: "x"})
	if rank := rdb.ZRank(ctx, key, "x").Val(); rank != 1 {
		t.Fatalf("x at rank %d, the case needs 1", rank)
	}
	ws, _, err = st.Page(ctx, sku, "us-east-1", next, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, w.UserID)
	}
	if want := []string{"b", "x", "c"}; !slices.Equal(got, want) {
		t.Fatalf("page after the cursor: %v, want %v", got, want)
	}
}

// TestScrubCheckpoint: a checkpoint whose cursor is an erased wishlister
// loses the id, keeps its counts and TTL, and a fan-out resumed from it
// starts at the first wishlister of the cursor's millisecond (repeating
// only those, which the notifier absorbs), skipping none after it.
func TestScrubCheckpoint(t *testing.T) {
	rdb, st := openStore(t)
	ctx := context.Background()
	sku := testenv.Unique(t, "sku")
	base := time.UnixMilli(1_700_000_000_000)
	var puts []wishes.Entry
	for i, u := range []string{"a1", "b2", "c3", "d4"} {
		// a1 earlier; b2, c3 and d4 share a millisecond.
		since := base.Add(time.Millisecond)
		if i == 0 {
			since = base
		}
		puts = append(puts, wishes.Entry{UserID: u, SKU: sku, Region: "us-east-1", Channels: []string{"app"}, Since: since})
	}
	writeNew(t, st, puts)
	event := testenv.Unique(t, "ev")
	ck := wishes.Checkpoint{Score: base.Add(time.Millisecond).UnixMilli(), Member: "c3", Users: 3, Records: 3}
	if err := st.SaveCheckpoint(ctx, event, "us-east-1", ck, time.Hour); err != nil {
		t.Fatal(err)
	}
	other := testenv.Unique(t, "ev")
	if err := st.SaveCheckpoint(ctx, other, "us-east-1", wishes.Checkpoint{Score: ck.Score, Member: "b2"}, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := st.EraseUser(ctx, "c3", []string{sku}, []string{"us-east-1", "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	n, err := st.ScrubCheckpoints(ctx, "c3")
	if err != nil || n != 1 {
		t.Fatalf("scrubbed %d, %v; want 1", n, err)
	}
	got, err := st.Checkpoint(ctx, event, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (wishes.Checkpoint{Score: ck.Score, Member: store.ErasedCursor, Users: 3, Records: 3}); got != want {
		t.Fatalf("checkpoint %+v, want %+v", got, want)
	}
	if ttl := rdb.TTL(ctx, store.CheckpointKey(event, "us-east-1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("TTL %s after the scrub, want the hour kept", ttl)
	}
	if o, _ := st.Checkpoint(ctx, other, "us-east-1"); o.Member != "b2" {
		t.Fatalf("another user's checkpoint changed: %+v", o)
	}
	page, _, err := st.Page(ctx, sku, "us-east-1", store.Cursor{Score: got.Score, Member: got.Member}, nil, 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, w := range page {
		ids = append(ids, w.UserID)
	}
	if !slices.Equal(ids, []string{"b2", "d4"}) {
		t.Fatalf("resumed page %v, want [b2 d4]", ids)
	}
	if n, err := st.ScrubCheckpoints(ctx, "c3"); err != nil || n != 0 {
		t.Fatalf("second scrub changed %d, %v; want 0", n, err)
	}
}

// TestSetPrefsWritesTheOptOutRecord: the rebuild's path (SetPrefs) writes
// the opt-out record with the preferences and deletes it with them.
func TestSetPrefsWritesTheOptOutRecord(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	defer rdb.Close()
	st := store.New(rdb)
	ctx := context.Background()
	user := testenv.Unique(t, "u")
	read := func() string {
		t.Helper()
		v, err := rdb.Get(ctx, optout.Key(user)).Result()
		if errors.Is(err, redis.Nil) {
			return "(none)"
		}
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		name  string
		prefs *wishes.Preferences
		want  string
	}{
		{"channels", &wishes.Preferences{OptOut: []string{"sms", "email"}}, "email,sms"},
		{"unsubscribed", &wishes.Preferences{Unsubscribed: true, OptOut: []string{"sms"}}, "all"},
		{"opted back in", &wishes.Preferences{Locale: "de"}, "(none)"},
		{"unsubscribed again", &wishes.Preferences{Unsubscribed: true}, "all"},
		{"cleared", nil, "(none)"},
	} {
		if err := st.SetPrefs(ctx, user, tc.prefs); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != tc.want {
			t.Fatalf("%s: record %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestPlanSegmentsCoverEachWishlisterOnce splits 40 wishlisters (ten per
// wishlist millisecond, so boundaries fall among equal scores) into
// segments, pages each on its own up to its end, and finds every
// wishlister after the cursor in exactly one segment, in order; a limited
// plan covers exactly the first limit; a small set or a large minimum
// gives one segment; after an erased boundary is scrubbed, the segments
// still cover every remaining wishlister once.
func TestPlanSegmentsCoverEachWishlisterOnce(t *testing.T) {
	rdb, st := openStore(t)
	ctx := context.Background()
	sku := testenv.Unique(t, "sku")
	base := time.UnixMilli(1_700_000_000_000)
	puts := forty(sku, base)
	writeNew(t, st, puts)
	var all []string
	for _, e := range puts {
		all = append(all, fmt.Sprintf("%d/%s", e.Since.UnixMilli(), e.UserID))
	}
	slices.Sort(all)

	// pageAll pages each segment from its start to its end, 3 at a time.
	pageAll := func(from store.Cursor, ends []*wishes.Bound) (got []string, per []int) {
		t.Helper()
		for _, end := range ends {
			cur, n := from, 0
			for {
				ws, next, err := st.Page(ctx, sku, "us-east-1", cur, end, 3)
				if err != nil {
					t.Fatal(err)
				}
				if len(ws) == 0 {
					break
				}
				for _, w := range ws {
					got = append(got, fmt.Sprintf("%d/%s", w.Entry.Since.UnixMilli(), w.UserID))
				}
				n += len(ws)
				cur = next
			}
			per = append(per, n)
			if end != nil {
				from = store.Cursor{Score: end.Score, Member: end.Member}
			}
		}
		return got, per
	}

	n, ends, err := st.Plan(ctx, sku, "us-east-1", store.Cursor{}, -1, 4, 5)
	if err != nil || n != 40 || len(ends) != 4 || ends[3] != nil {
		t.Fatalf("plan of all: n=%d ends=%v err=%v; want 40 in 4, the last open", n, ends, err)
	}
	if got, per := pageAll(store.Cursor{}, ends); !slices.Equal(got, all) || !slices.Equal(per, []int{10, 10, 10, 10}) {
		t.Fatalf("segments paged %v (per segment %v), want %v in 4×10", got, per, all)
	}

	// From a cursor in the middle of a millisecond, at most 13.
	from := store.Cursor{Score: base.Add(time.Millisecond).UnixMilli(), Member: "u05"}
	// u05's millisecond is another: the plan starts among the cursor's
	// score where u05 would sort, as a page does.
	rest := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return s <= fmt.Sprintf("%d/u05", from.Score) })
	n, ends, err = st.Plan(ctx, sku, "us-east-1", from, 13, 3, 2)
	if err != nil || n != 13 || len(ends) != 3 || ends[2] == nil {
		t.Fatalf("limited plan: n=%d ends=%v err=%v; want 13 in 3, the last closed", n, ends, err)
	}
	if got, per := pageAll(from, ends); !slices.Equal(got, rest[:13]) || !slices.Equal(per, []int{4, 4, 5}) {
		t.Fatalf("limited segments paged %v (per segment %v), want %v", got, per, rest[:13])
	}

	if _, ends, _ := st.Plan(ctx, sku, "us-east-1", store.Cursor{}, -1, 4, 21); len(ends) != 1 || ends[0] != nil {
		t.Fatalf("40 wishlisters with 21 per segment at least: %v, want one open segment", ends)
	}
	if n, ends, err := st.Plan(ctx, sku, "us-east-1", store.Cursor{Score: base.Add(3 * time.Millisecond).UnixMilli(), Member: "~"}, -1, 4, 1); n != 0 || ends != nil || err != nil {
		t.Fatalf("plan after the last wishlister: n=%d ends=%v err=%v", n, ends, err)
	}

	// A round whose second segment ends at a wishlister who is erased.
	_, ends, _ = st.Plan(ctx, sku, "us-east-1", store.Cursor{}, -1, 4, 5)
	gone := ends[1].Member
	event := testenv.Unique(t, "ev")
	var segs []wishes.Segment
	prev := wishes.Bound{}
	for _, e := range ends {
		segs = append(segs, wishes.Segment{Checkpoint: wishes.Checkpoint{Score: prev.Score, Member: prev.Member}, To: e})
		if e != nil {
			prev = *e
		}
	}
	ck := wishes.Checkpoint{Round: &wishes.Round{Segments: len(segs)}}
	if err := st.SaveRound(ctx, event, "us-east-1", ck, segs, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := st.EraseUser(ctx, gone, []string{sku}, []string{"us-east-1"}); err != nil {
		t.Fatal(err)
	}
	if n, err := st.ScrubCheckpoints(ctx, gone); err != nil || n != 1 {
		t.Fatalf("scrubbed %d keys, %v; want the segments key", n, err)
	}
	if v := rdb.HGetAll(ctx, store.SegmentsKey(event, "us-east-1")).String(); strings.Contains(v, gone) {
		t.Fatalf("segments still name %s: %s", gone, v)
	}
	if ttl := rdb.TTL(ctx, store.SegmentsKey(event, "us-east-1")).Val(); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("segments TTL %s after the scrub", ttl)
	}
	stored, err := st.Segments(ctx, event, "us-east-1", len(segs))
	if err != nil {
		t.Fatal(err)
	}
	var scrubbed []*wishes.Bound
	for _, sg := range stored {
		scrubbed = append(scrubbed, sg.To)
	}
	want := slices.DeleteFunc(slices.Clone(all), func(s string) bool { return strings.HasSuffix(s, "/"+gone) })
	if got, _ := pageAll(store.Cursor{}, scrubbed); !slices.Equal(got, want) {
		t.Fatalf("after the scrub the segments page %v, want %v", got, want)
	}
	// Folding the round removes the segments.
	if err := st.SaveRound(ctx, event, "us-east-1", wishes.Checkpoint{Users: 39}, nil, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if rdb.Exists(ctx, store.SegmentsKey(event, "us-east-1")).Val() != 0 {
		t.Fatal("segments left after the round was folded")
	}
}

// TestSegmentLeasesFenceTheCheckpoint: an opened round is listed for the
// region's workers with its job; one worker at a time holds a segment's
// lease, only the holder moves its checkpoint, a lease given up or run out
// can be taken by another, and folding the round closes it.
func TestSegmentLeasesFenceTheCheckpoint(t *testing.T) {
	_, st := openStore(t)
	ctx := context.Background()
	id, region := testenv.Unique(t, "ev"), "eu-west-1"
	segs := []wishes.Segment{{To: &wishes.Bound{Score: 5, Member: "m"}}, {Checkpoint: wishes.Checkpoint{Score: 5, Member: "m"}}}
	job := &store.RoundJob{Round: 7, Event: events.RestockEvent{EventID: id, SKU: "s", Region: region, Episode: 1}, Trace: "00-x"}
	if err := st.SaveRound(ctx, id, region, wishes.Checkpoint{Round: &wishes.Round{ID: 7, Segments: 2}}, segs, job, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ids, err := st.OpenRounds(ctx, region); err != nil || !slices.Contains(ids, id) {
		t.Fatalf("open rounds %v, %v; want %s", ids, err, id)
	}
	gotJob, gotSegs, err := st.Round(ctx, id, region)
	if err != nil || gotJob == nil || gotJob.Round != 7 || gotJob.Event.SKU != "s" || gotJob.Trace != "00-x" || len(gotSegs) != 2 || gotSegs[0].To.Member != "m" {
		t.Fatalf("round read back: %+v %+v %v", gotJob, gotSegs, err)
	}

	claim := func(owner string, i int, ttl time.Duration) bool {
		t.Helper()
		ok, err := st.SegmentLease(id, region, 7, i, owner, ttl).Hold(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	save := func(owner string, users int64) error {
		return st.SaveSegment(ctx, id, region, 7, 0, owner, wishes.Segment{Checkpoint: wishes.Checkpoint{Users: users}, To: segs[0].To})
	}
	if !claim("a", 0, time.Minute) || claim("b", 0, time.Minute) {
		t.Fatal("segment 0: a should take the lease and b not")
	}
	if err := save("b", 2); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("b saved without the lease: %v", err)
	}
	if err := save("a", 1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := st.SegmentLease(id, region, 7, 0, "b", time.Minute).Hold(ctx); ok {
		t.Fatal("b renewed a's lease")
	}
	if ok, _ := st.SegmentLease(id, region, 7, 0, "a", time.Minute).Hold(ctx); !ok {
		t.Fatal("a could not renew its lease")
	}
	_ = st.SegmentLease(id, region, 7, 0, "b", 0).Release(ctx) // not b's: nothing
	if claim("b", 0, time.Minute) {
		t.Fatal("b took a lease a still holds")
	}
	if err := st.SegmentLease(id, region, 7, 0, "a", 0).Release(ctx); err != nil {
		t.Fatal(err)
	}
	if !claim("b", 0, time.Minute) {
		t.Fatal("b could not take the released lease")
	}
	if err := save("a", 3); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("a saved after giving the lease up: %v", err)
	}
	if got, _ := st.Segments(ctx, id, region, 2); got[0].Users != 1 {
		t.Fatalf("segment 0 after the refused saves: %+v, want a's users=1", got[0])
	}
	// A lease that runs out can be taken; another round's leases are apart.
	if !claim("c", 1, 50*time.Millisecond) {
		t.Fatal("c could not take segment 1")
	}
	time.Sleep(120 * time.Millisecond)
	if !claim("d", 1, time.Minute) {
		t.Fatal("d could not take the lease c let run out")
	}
	if ok, _ := st.SegmentLease(id, region, 8, 1, "e", time.Minute).Hold(ctx); !ok {
		t.Fatal("round 8's segment 1 shares round 7's lease")
	}

	if err := st.SaveRound(ctx, id, region, wishes.Checkpoint{Users: 9}, nil, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if ids, _ := st.OpenRounds(ctx, region); slices.Contains(ids, id) {
		t.Fatalf("folded round still open: %v", ids)
	}
	if j, _, err := st.Round(ctx, id, region); j != nil || err != nil {
		t.Fatalf("folded round read back: %+v, %v", j, err)
	}
}

// TestProgressAddsTheRoundsSegments: a fan-out not begun has no progress;
// with a round open, the checkpoint's counts plus its segments'; with a
// segment gone from the round, an error naming it (not a short count); the
// round folded, the checkpoint alone.
func TestProgressAddsTheRoundsSegments(t *testing.T) {
	ctx := context.Background()
	rdb, st := openStore(t)
	id, region := testenv.Unique(t, "ev"), "us-east-1"
	if ck, err := st.Progress(ctx, id, region); err != nil || ck != (wishes.Checkpoint{}) {
		t.Fatalf("not begun: %+v, %v; want zero", ck, err)
	}
	ck := wishes.Checkpoint{Users: 5, Records: 6, Round: &wishes.Round{ID: 3, Segments: 2}}
	segs := []wishes.Segment{{Checkpoint: wishes.Checkpoint{Users: 10, Records: 11}}, {Checkpoint: wishes.Checkpoint{Users: 20, Records: 22}}}
	if err := st.SaveRound(ctx, id, region, ck, segs, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Progress(ctx, id, region); err != nil || got.Users != 35 || got.Records != 39 || got.Round == nil || got.Round.ID != 3 {
		t.Fatalf("round open: %+v, %v; want 35 users, 39 records, round 3", got, err)
	}
	if err := rdb.HDel(ctx, store.SegmentsKey(id, region), "1").Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Progress(ctx, id, region); err == nil || !strings.Contains(err.Error(), "segment 1 of "+id) {
		t.Fatalf("segment 1 deleted: error %v, want one naming it", err)
	}
	if err := st.SaveRound(ctx, id, region, wishes.Checkpoint{Users: 35, Records: 39}, nil, nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Progress(ctx, id, region); err != nil || got != (wishes.Checkpoint{Users: 35, Records: 39}) {
		t.Fatalf("round folded: %+v, %v; want the checkpoint alone", got, err)
	}
}
