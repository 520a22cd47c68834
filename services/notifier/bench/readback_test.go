package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/notifier/internal/edge"
	"backinstock/topics/events"
)

// TestReadBackCatchesBrokenDedupe proves the bench's edge read-back can
// fail: 2,000 notifications plus 5% duplicate records, the same preload the
// bench gives the notifier, go through the bare loop with its dedupe broken
// (no SET NX, no Nats-Msg-Id) as the region's notifier group; verifyEdge
// must report the 100 duplicates, and a missing id for one expected id that
// was never produced. TestDriver's bench part is the passing counterpart
// (the real notifier on the same input).
func TestReadBackCatchesBrokenDedupe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := startServers()
	t.Cleanup(s.close)
	if err != nil {
		t.Fatal(err)
	}
	const region, n = "dedupe", 2000
	channels := []string{"app"}
	pre, err := s.preload(ctx, region, channels, n, 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(pre.ids) != n || pre.dups != n*5/100 {
		t.Fatalf("preload: %d distinct ids, %d duplicates; want %d and %d", len(pre.ids), pre.dups, n, n*5/100)
	}
	pub, err := edge.NewPublisher(s.nc, 1024, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := edge.EnsureStreams(ctx, s.js, region, edge.StreamOptions{Duplicates: time.Hour, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.redis.Addr})
	defer rdb.Close()
	lctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runBare(lctx, s.kcfg(), rdb, pub, region, "notifier."+region, false) }()
	defer func() { stop(); <-done }()

	missing := events.NotificationID("never-produced", "sku-0", region, 1, "app")
	pre.ids[missing] = true
	err = s.verifyEdge(ctx, region, channels, "notifier."+region, pre.ids, io.Discard)
	if err == nil {
		t.Fatal("verifyEdge passed an edge stream holding duplicates")
	}
	t.Log(err)
	for _, want := range []string{"NOT exactly once", "expected=2001", "delivered=2100", "distinct=2000", "duplicates=100", "missing=1", "e.g. duplicate ", "e.g. missing " + missing} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q", want)
		}
	}
}
