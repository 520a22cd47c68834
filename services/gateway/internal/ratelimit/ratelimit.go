// Package ratelimit keeps a provider's rate limit over every gateway replica
// of a region: one GCRA limiter per (region, provider) in Redis
// (github.com/go-redis/redis_rate), so three replicas together send no
// faster than the provider's contract allows, whatever each one's share of
// the work.
//
// A limit is "n per period", kept over every sliding window of one period
// as the provider sees it (see Limit.GCRA): GCRA with burst b and rate r
// grants at most b + r - 1 in any window of its period. (A burst of n
// would let 2n through a sliding window: n at once, then n more as the
// bucket refills.)
//
// The limits are keyed by provider name (twilio=50/s), not channel: the
// contract is the provider's, and one provider serving several channels
// (webhook) has one budget.
package ratelimit

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"backinstock/shared/config"
)

// Limit is n sends per Period.
type Limit struct {
	N      int
	Period time.Duration
}

func (l Limit) String() string {
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[l.Period]
	return strconv.Itoa(l.N) + "/" + unit
}

// Interval is the spacing of the grants: Period / N.
func (l Limit) Interval() time.Duration { return l.Period / time.Duration(l.N) }

// Lateness is how late a waiter may come for its slot without the slot
// being lost: a replica wakes after the slot (timer, scheduling, the Redis
// round trip), and with a burst of one each late grant moves the whole
// schedule back; under load that cost 40% of the rate here (29/s of 50/s
// on a 2-core machine at load 22). A burst covering this much lateness
// keeps the rate.
const Lateness = 50 * time.Millisecond

// Jitter is how much the way from the grant to the provider (render, the
// connection, the network, the provider's own front) may vary between two
// sends: the provider counts arrivals, and a send granted on time can
// arrive after a later one. The limit is kept over windows this much
// longer than its period, so it holds at the provider for any two sends
// whose ways differ by up to Jitter.
const Jitter = 100 * time.Millisecond

// GCRA is the redis_rate limit that keeps l at the provider: burst b = 1 +
// the grants of Lateness, and n - b + 1 grants per Period + Jitter, so any
// window of Period + Jitter holds at most b + (n - b + 1) - 1 = n grants.
// The price is the rate: 50/s becomes about 43.6/s of sends; 600/m about
// 598.5/m.
func (l Limit) GCRA() redis_rate.Limit {
	burst := 1 + int(int64(l.N)*int64(Lateness)/int64(l.Period))
	return redis_rate.Limit{Rate: l.N - burst + 1, Period: l.Period + Jitter, Burst: burst}
}

// periods are the units a limit may be given in.
var periods = map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}

// Parse reads GATEWAY_RATE_LIMITS: "provider=n/unit,..." with unit s, m or
// h ("twilio=50/s,fcm=600/m"). Empty is no limit at all. Each error names
// the item and what is wrong with it.
func Parse(spec string) (map[string]Limit, error) {
	out := map[string]Limit{}
	for _, item := range config.SplitList(spec) {
		name, rate, ok := strings.Cut(item, "=")
		name, rate = strings.TrimSpace(name), strings.TrimSpace(rate)
		if !ok || name == "" || rate == "" {
			return nil, fmt.Errorf("%q is not provider=n/unit (such as twilio=50/s)", item)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%q: provider %s given twice", item, name)
		}
		ns, unit, ok := strings.Cut(rate, "/")
		if !ok {
			return nil, fmt.Errorf("%q: %q has no /unit (s, m or h)", item, rate)
		}
		period, ok := periods[strings.TrimSpace(unit)]
		if !ok {
			return nil, fmt.Errorf("%q: unit %q is not s, m or h", item, unit)
		}
		n, err := strconv.Atoi(strings.TrimSpace(ns))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: %q is not a whole number of sends above 0", item, ns)
		}
		// GCRA spaces grants by period/n; below a microsecond Redis' clock
		// (TIME, µs) cannot tell them apart.
		if period/time.Duration(n) < time.Microsecond {
			return nil, fmt.Errorf("%q: more than one send per microsecond", item)
		}
		out[name] = Limit{N: n, Period: period}
	}
	return out, nil
}

// Format writes limits back in Parse's form, sorted by provider.
func Format(limits map[string]Limit) string {
	names := make([]string, 0, len(limits))
	for n := range limits {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + limits[n].String()
	}
	return strings.Join(parts, ",")
}

// Metrics count the waits the limits impose.
type Metrics struct {
	Waits       *prometheus.CounterVec
	WaitSeconds *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil:
// unregistered).
func NewMetrics(reg prometheus.Registerer, region string) *Metrics {
	cl := prometheus.Labels{"region": region}
	m := &Metrics{
		Waits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_gateway_ratelimit_waits_total", ConstLabels: cl,
			Help: "Sends that waited for the provider's shared rate limit (GATEWAY_RATE_LIMITS) before calling it."}, []string{"provider"}),
		WaitSeconds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_gateway_ratelimit_wait_seconds_total", ConstLabels: cl,
			Help: "Time sends spent waiting for the provider's shared rate limit."}, []string{"provider"}),
	}
	if reg != nil {
		reg.MustRegister(m.Waits, m.WaitSeconds)
	}
	return m
}

// Limiter is one provider's limit in one region, shared through Redis.
type Limiter struct {
	rl       *redis_rate.Limiter
	key      string
	limit    redis_rate.Limit
	provider string
	m        *Metrics
}

// New builds the limiter of provider in region; m may be nil.
func New(rdb redis.UniversalClient, region, provider string, l Limit, m *Metrics) *Limiter {
	if m == nil {
		m = NewMetrics(nil, region)
	}
	return &Limiter{
		rl: redis_rate.NewLimiter(rdb),
		// redis_rate prefixes "rate:". The braces keep the key on one
		// Redis Cluster node per region, like the gateway's other keys.
		key:      Key(region, provider),
		limit:    l.GCRA(),
		provider: provider,
		m:        m,
	}
}

// Key is the limiter's Redis key without redis_rate's "rate:" prefix.
func Key(region, provider string) string { return "gwy:{" + region + "}:ratelimit:" + provider }

// Wait returns once one more send is allowed, or with ctx's error. A Redis
// error is returned at once, nothing granted: the caller retries in place
// (the delivery protocol's Redis steps do), so an outage stalls the sends
// instead of letting them through unlimited. A grant lost to a timeout
// (the script ran, the answer did not arrive) only slows the sends.
func (l *Limiter) Wait(ctx context.Context) error {
	start := time.Now()
	waited := false
	defer func() {
		if waited {
			l.m.Waits.WithLabelValues(l.provider).Inc()
			l.m.WaitSeconds.WithLabelValues(l.provider).Add(time.Since(start).Seconds())
		}
	}()
	for {
		res, err := l.rl.Allow(ctx, l.key, l.limit)
		if err != nil {
			return fmt.Errorf("rate limit %s: %w", l.provider, err)
		}
		if res.Allowed > 0 {
			return nil
		}
		waited = true
		// Every waiter learns the same next slot; a little jitter spreads
		// the replicas' retries so they do not all hit Redis in the same
		// instant (one of them wins the slot either way).
		after := res.RetryAfter + time.Duration(rand.Int64N(int64(l.limit.Period/time.Duration(l.limit.Rate))/4+1))
		t := time.NewTimer(after)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
