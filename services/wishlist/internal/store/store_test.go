package store_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// TestPageCursor pages through wishlisters with many equal wishlist times
// while the wishlister under the cursor (and others) leave: every remaining
// wishlister comes exactly once, earliest first, ties by user id.
func TestPageCursor(t *testing.T) {
	r := env.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	st := store.New(rdb)
	ctx := context.Background()
	sku := testenv.Unique(t, "sku")
	base := time.UnixMilli(1_700_000_000_000)
	var puts []wishes.Entry
	for i := range 40 {
		// Four wishlist times, ten users each, inserted out of id order.
		puts = append(puts, wishes.Entry{UserID: fmt.Sprintf("u%02d", (i*7)%40), SKU: sku, Region: "us-east-1", Channels: []string{"app"},
			Since: base.Add(time.Duration(i/10) * time.Millisecond)})
	}
	if err := st.Write(ctx, puts, nil, make([]*wishes.Entry, len(puts))); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, e := range puts {
		want = append(want, fmt.Sprintf("%d/%s", e.Since.UnixMilli(), e.UserID))
	}
	slices.Sort(want)

	var (
		cur     store.Cursor
		got     []string
		removed = map[string]bool{}
	)
	for page := 0; ; page++ {
		ws, err := st.Page(ctx, sku, "us-east-1", cur, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) == 0 {
			break
		}
		for _, w := range ws {
			if w.Entry == nil || w.Entry.Region != "us-east-1" {
				t.Fatalf("wishlister %s without its entry", w.UserID)
			}
			got = append(got, fmt.Sprintf("%d/%s", w.Score, w.UserID))
		}
		last := ws[len(ws)-1]
		cur = store.Cursor{Score: last.Score, Member: last.UserID}
		if page%2 == 0 {
			// The cursor's own member leaves: the next page must still
			// start right after it.
			old := []*wishes.Entry{{UserID: last.UserID, SKU: sku, Region: "us-east-1"}}
			if err := st.Write(ctx, nil, []wishes.Entry{{UserID: last.UserID, SKU: sku}}, old); err != nil {
				t.Fatal(err)
			}
			removed[last.UserID] = true
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged order:\n got %v\nwant %v", got, want)
	}
	if n := rdb.ZCard(ctx, store.UsersKey(sku, "us-east-1")).Val(); n != int64(40-len(removed)) {
		t.Fatalf("%d left after %d removals", n, len(removed))
	}
}
