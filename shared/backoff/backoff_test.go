package backoff

import (
	"context"
	"testing"
	"time"
)

func TestCeilingDoublesToTheCapAndResets(t *testing.T) {
	b := New(100*time.Millisecond, time.Second)
	b.jitter = func() float64 { return 0.999999 } // the top of each range
	var got []time.Duration
	for range 6 {
		got = append(got, b.Next().Round(time.Millisecond))
	}
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", got, want)
		}
	}
	b.Reset()
	if d := b.Next().Round(time.Millisecond); d != 100*time.Millisecond {
		t.Fatalf("after Reset %s, want 100ms", d)
	}
}

// Full jitter: waits spread over the whole [0, ceiling], so a crowd of
// retriers does not come back together.
func TestFullJitterSpreadsOverTheRange(t *testing.T) {
	const n = 2000
	var low, high, over int
	for range n {
		b := New(time.Second, time.Second)
		d := b.Next()
		switch {
		case d > time.Second:
			over++
		case d < 250*time.Millisecond:
			low++
		case d > 750*time.Millisecond:
			high++
		}
	}
	if over > 0 {
		t.Fatalf("%d waits above the ceiling", over)
	}
	// Each quarter holds about 500 of 2000; 350 is far outside chance.
	if low < 350 || high < 350 {
		t.Fatalf("waits not spread: %d in the bottom quarter, %d in the top", low, high)
	}
}

func TestWaitStopsWithTheContext(t *testing.T) {
	b := New(time.Hour, time.Hour)
	b.jitter = func() float64 { return 0.5 }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	if b.Wait(ctx) {
		t.Fatal("Wait reported a full sleep after its context ended")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("Wait ignored its context")
	}
}

func TestBadBoundsAreMadeSafe(t *testing.T) {
	b := New(0, -1)
	for range 10 {
		if d := b.Next(); d < 0 || d > time.Millisecond {
			t.Fatalf("wait %s outside [0, 1ms]", d)
		}
	}
}
