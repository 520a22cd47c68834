package store_test

import (
	"context"
	"os"
	"testing"
	"time"

	"backinstock/services/engagement/internal/store"
	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// TestClickCountsTotalAndFirst: the first click is the one First, every
// click adds to Total, and the counters live until a day past the link's
// expiry.
func TestClickCountsTotalAndFirst(t *testing.T) {
	ctx := context.Background()
	rdb, err := redisconn.New(ctx, env.Redis(t).URL(), redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	st := store.New(rdb)
	nid := testenv.Unique(t, "n")
	if c, err := st.Get(ctx, nid); err != nil || c.Total != 0 || c.Unique() != 0 || !c.FirstAt.IsZero() {
		t.Fatalf("before any click: %+v %v", c, err)
	}
	t0 := time.Now().UTC().Truncate(time.Millisecond)
	expires := t0.Add(48 * time.Hour)
	for i, want := range []store.Clicks{{Total: 1, First: true, FirstAt: t0}, {Total: 2, First: false, FirstAt: t0}, {Total: 3, FirstAt: t0}} {
		got, err := st.Click(ctx, nid, t0.Add(time.Duration(i)*time.Minute), expires)
		if err != nil || got != want {
			t.Fatalf("click %d: %+v %v, want %+v", i+1, got, err, want)
		}
	}
	c, err := st.Get(ctx, nid)
	if err != nil || c.Total != 3 || c.Unique() != 1 || !c.FirstAt.Equal(t0) {
		t.Fatalf("read back %+v %v", c, err)
	}
	ttl, err := rdb.PTTL(ctx, "engagement:click:{"+nid+"}").Result()
	if err != nil || ttl < 71*time.Hour || ttl > 72*time.Hour {
		t.Errorf("counters expire in %s (%v), want about 72h (the link's 48h and a day)", ttl, err)
	}
}
