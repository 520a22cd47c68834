package redisconn_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
)

// TestScanFindsEveryMatch: more keys than one SCAN step, only the matching
// ones handed over, each at least once.
func TestScanFindsEveryMatch(t *testing.T) {
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	ctx := context.Background()
	rdb, err := redisconn.New(ctx, r.URL(), redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	pipe := rdb.Pipeline()
	var want []string
	for i := range 2500 {
		k := fmt.Sprintf("scan:{u%d|alice}:x", i)
		pipe.Set(ctx, k, "1", 0)
		want = append(want, k)
		pipe.Set(ctx, fmt.Sprintf("scan:{u%d|bob}:x", i), "1", 0)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	err = redisconn.Scan(ctx, rdb, "scan:{*|alice}:*", func(_ context.Context, keys []string) error {
		mu.Lock()
		defer mu.Unlock()
		for _, k := range keys {
			seen[k] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k := range seen {
		got = append(got, k)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("scan found %d keys, want %d", len(got), len(want))
	}
}
