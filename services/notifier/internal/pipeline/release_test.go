package pipeline_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/services/notifier/internal/notifiertest"
	"backinstock/services/notifier/internal/pipeline"
	"backinstock/services/notifier/internal/store"
	"backinstock/shared/pause"
	"backinstock/topics/events"
)

// TestReleaseKeepsWhatAPauseStopped: an operator pauses app while held
// notifications are being released, after the releaser's own pause check.
// The app notification must stay held (not be dropped from the held set
// unpublished) and go out once after the resume; the email one goes out in
// the first release. Releasing the paused channel's ids with the rest loses
// the app notification.
func TestReleaseKeepsWhatAPauseStopped(t *testing.T) {
	ctx := context.Background()
	region, rdb, pub, js := edgeRig(t)
	st := store.New(rdb, region, time.Hour)
	now := time.Now()
	var held []store.Held
	for _, ch := range []string{events.ChannelApp, events.ChannelEmail} {
		n := notifiertest.Notification(region, ch, "sleeper", "sku-r", 1, now)
		data, err := events.Encode(n)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, store.Held{ID: n.NotificationID, Release: now.Add(-time.Minute), Payload: data})
	}
	if err := st.Hold(ctx, held); err != nil {
		t.Fatal(err)
	}

	ps := pause.NewStore(rdb)
	w := pause.NewWatcher(ps, pause.WatcherOptions{Region: region})
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	pauseOnce := true
	p := pipeline.New(pipeline.Options{Region: region, Store: st, Pub: pub, Pause: w,
		Log: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)),
		// The first channel's deliver, whichever it is, pauses app: past
		// ReleaseDue's check, before app's publish.
		Crash: func(point string) {
			if point != pipeline.AfterReserve || !pauseOnce {
				return
			}
			pauseOnce = false
			if err := ps.Pause(ctx, region, []string{events.ChannelApp}, "test", "mid-release"); err != nil {
				t.Error(err)
			}
			if err := w.Refresh(ctx); err != nil {
				t.Error(err)
			}
		}})

	edgeHolds := func(stage string, ids ...string) {
		t.Helper()
		c, err := notifiertest.EdgeCounts(ctx, js, region)
		if err != nil {
			t.Fatal(err)
		}
		if c.Total != len(ids) {
			t.Fatalf("%s: edge holds %d messages, want %d: %v", stage, c.Total, len(ids), c.PerID)
		}
		for _, id := range ids {
			if c.PerID[id] != 1 {
				t.Fatalf("%s: edge holds %d of %s, want 1: %v", stage, c.PerID[id], id, c.PerID)
			}
		}
	}
	if n, err := p.ReleaseDue(ctx, 10); err != nil || n != 1 {
		t.Fatalf("first release = %d, %v; want 1 (email), app paused", n, err)
	}
	edgeHolds("after the first release", held[1].ID)
	due, err := st.Due(ctx, time.Now(), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].ID != held[0].ID {
		t.Fatalf("held after the paused release = %v, want the app notification only", due)
	}

	if err := ps.Resume(ctx, region, []string{events.ChannelApp}); err != nil {
		t.Fatal(err)
	}
	if err := w.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := p.ReleaseDue(ctx, 10); err != nil || n != 1 {
		t.Fatalf("release after the resume = %d, %v; want 1", n, err)
	}
	edgeHolds("after the resume", held[0].ID, held[1].ID)
	if due, err := st.Due(ctx, time.Now(), 10); err != nil || len(due) != 0 {
		t.Fatalf("held after the resume = %v, %v; want none", due, err)
	}
}
