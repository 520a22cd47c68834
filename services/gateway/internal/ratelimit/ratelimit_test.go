package ratelimit_test

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"backinstock/services/gateway/internal/providertest"
	"backinstock/services/gateway/internal/ratelimit"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func TestParse(t *testing.T) {
	cases := []struct {
		spec string
		want map[string]ratelimit.Limit
		err  string
	}{
		{"", map[string]ratelimit.Limit{}, ""},
		{"twilio=50/s", map[string]ratelimit.Limit{"twilio": {50, time.Second}}, ""},
		{" twilio = 100 / s , fcm=600/m,webhook=3600/h", map[string]ratelimit.Limit{
			"twilio": {100, time.Second}, "fcm": {600, time.Minute}, "webhook": {3600, time.Hour}}, ""},
		{"twilio", nil, `"twilio" is not provider=n/unit`},
		{"=5/s", nil, `"=5/s" is not provider=n/unit`},
		{"twilio=50", nil, `"50" has no /unit`},
		{"twilio=50/d", nil, `unit "d" is not s, m or h`},
		{"twilio=0/s", nil, `"0" is not a whole number of sends above 0`},
		{"twilio=-3/s", nil, `"-3" is not a whole number`},
		{"twilio=1.5/s", nil, `"1.5" is not a whole number`},
		{"twilio=5/s,twilio=6/s", nil, "provider twilio given twice"},
		{"twilio=2000000/s", nil, "more than one send per microsecond"},
	}
	for _, c := range cases {
		got, err := ratelimit.Parse(c.spec)
		switch {
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("Parse(%q) error %v, want %q", c.spec, err, c.err)
		case c.err == "" && err != nil:
			t.Errorf("Parse(%q): %v", c.spec, err)
		case c.err == "" && len(got) != len(c.want):
			t.Errorf("Parse(%q) = %v, want %v", c.spec, got, c.want)
		}
		for k, v := range c.want {
			if got[k] != v {
				t.Errorf("Parse(%q)[%s] = %v, want %v", c.spec, k, got[k], v)
			}
		}
	}
	l, _ := ratelimit.Parse("webhook=3600/h,fcm=600/m,twilio=50/s")
	if s := ratelimit.Format(l); s != "fcm=600/m,twilio=50/s,webhook=3600/h" {
		t.Errorf("Format %q", s)
	}
	if i := l["twilio"].Interval(); i != 20*time.Millisecond {
		t.Errorf("interval %s", i)
	}
}

// TestGCRA: the limit handed to redis_rate lets no more than n through
// any window of the period plus Jitter, so none of the period at the
// provider; the rate it keeps.
func TestGCRA(t *testing.T) {
	cases := []struct {
		l           ratelimit.Limit
		rate, burst int
	}{
		{ratelimit.Limit{N: 1, Period: time.Second}, 1, 1},
		{ratelimit.Limit{N: 10, Period: time.Second}, 10, 1},
		{ratelimit.Limit{N: 20, Period: time.Second}, 19, 2},
		{ratelimit.Limit{N: 50, Period: time.Second}, 48, 3},
		{ratelimit.Limit{N: 100, Period: time.Second}, 95, 6},
		{ratelimit.Limit{N: 600, Period: time.Minute}, 600, 1},
	}
	for _, c := range cases {
		g := c.l.GCRA()
		if g.Rate != c.rate || g.Burst != c.burst || g.Period != c.l.Period+ratelimit.Jitter {
			t.Errorf("%s: %v, want rate %d burst %d per %s", c.l, g, c.rate, c.burst, c.l.Period+ratelimit.Jitter)
		}
		// At most burst + rate - 1 grants fit in one window of g.Period.
		if most := g.Burst + g.Rate - 1; most > c.l.N {
			t.Errorf("%s: %d in a window", c.l, most)
		}
	}
}

// TestSharedLimit: three limiters of one region and provider (three
// replicas) on one Redis, 24 goroutines asking as fast as they can: the
// grants, counted over every sliding one-second window, never exceed the
// limit, and the limit is used (not far under it). Another region's
// limiter has its own budget.
func TestSharedLimit(t *testing.T) {
	const rate, total = 20, 70
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis(t).Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	region := testenv.Unique(t, "r")
	m := ratelimit.NewMetrics(nil, region)
	var lims []*ratelimit.Limiter
	for range 3 {
		lims = append(lims, ratelimit.New(rdb, region, "twilio", ratelimit.Limit{N: rate, Period: time.Second}, m))
	}
	other := ratelimit.New(rdb, region+"-b", "twilio", ratelimit.Limit{N: rate, Period: time.Second}, nil)

	ctx := context.Background()
	var mu sync.Mutex
	var grants []time.Time
	var wg sync.WaitGroup
	left := total
	start := time.Now()
	for i := range 24 {
		wg.Go(func() {
			for {
				mu.Lock()
				if left == 0 {
					mu.Unlock()
					return
				}
				left--
				mu.Unlock()
				if err := lims[i%3].Wait(ctx); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				grants = append(grants, time.Now())
				mu.Unlock()
			}
		})
	}
	// The other region is not slowed by this one's queue.
	t0 := time.Now()
	for range 5 {
		if err := other.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(t0); d > 400*time.Millisecond {
		t.Errorf("5 sends in another region took %s", d)
	}
	wg.Wait()
	elapsed := time.Since(start)

	slices.SortFunc(grants, func(a, b time.Time) int { return a.Compare(b) })
	t.Logf("%d grants in %s: %.1f/s at a limit of %d/s", total, elapsed, float64(total-1)/grants[len(grants)-1].Sub(grants[0]).Seconds(), rate)
	// Grants are observed here a little after Redis made them (Jitter is
	// for that); the provider-side test
	// (app.TestRateLimitAcrossReplicas) measures what arrives.
	if w := providertest.MaxInWindow(grants, time.Second); w > rate {
		t.Errorf("%d grants within one second, limit %d", w, rate)
	}
	// 70 at 20/s (19 per 1.1 s and a burst of 2): at least 68 intervals
	// of 1.1/19 s.
	if min := time.Duration(total-2) * 1100 * time.Millisecond / 19; elapsed < min-50*time.Millisecond || elapsed > 2*min {
		t.Errorf("%d grants took %s, want about %s", total, elapsed, min)
	}
	if w := testutil.ToFloat64(m.Waits.WithLabelValues("twilio")); w < total/2 {
		t.Errorf("waits_total %v", w)
	}
	if s := testutil.ToFloat64(m.WaitSeconds.WithLabelValues("twilio")); s < 1 {
		t.Errorf("wait_seconds_total %v", s)
	}
}

// TestRedisDownGrantsNothing: without Redis Wait returns the error (the
// caller retries in place), it does not let the send through; a waiter
// whose context ends returns its error.
func TestRedisDownGrantsNothing(t *testing.T) {
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	lim := ratelimit.New(rdb, testenv.Unique(t, "r"), "twilio", ratelimit.Limit{N: 1, Period: time.Minute}, nil)
	ctx := context.Background()
	if err := lim.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// The next grant is a minute away: a short context ends first.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if err := lim.Wait(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait past the context: %v", err)
	}
	r.Stop()
	if err := lim.Wait(ctx); err == nil || !strings.Contains(err.Error(), "rate limit twilio") {
		t.Fatalf("wait with Redis down: %v", err)
	}
}
