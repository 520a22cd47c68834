// Package ratelimit holds the per-channel send limits of one notifier
// deployment (a provider's SMS quota, an email relay's rate). A limit is
// enforced by reserving tokens for a chunk of notifications and pausing the
// partition for the reservation's delay, so a throttled channel waits in
// Kafka, not in memory.
package ratelimit

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
)

// Limit is one channel's rate (per second) and burst.
type Limit struct {
	PerSecond float64
	Burst     int
}

// Parse reads "sms=100,email=2000:200" (channel=rate[:burst]). A missing
// burst is a tenth of the rate (at least 1), so the edge never sees more than
// rate+burst in any second.
func Parse(spec string, known func(string) bool) (map[string]Limit, error) {
	out := map[string]Limit{}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		ch, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want channel=rate[:burst]", part)
		}
		ch = strings.TrimSpace(ch)
		if known != nil && !known(ch) {
			return nil, fmt.Errorf("%q: unknown channel %q", part, ch)
		}
		r, b, hasBurst := strings.Cut(val, ":")
		perSec, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if err != nil || perSec <= 0 {
			return nil, fmt.Errorf("%q: rate must be a positive number", part)
		}
		burst := max(1, int(perSec/10))
		if hasBurst {
			burst, err = strconv.Atoi(strings.TrimSpace(b))
			if err != nil || burst < 1 {
				return nil, fmt.Errorf("%q: burst must be a positive integer", part)
			}
		}
		if _, dup := out[ch]; dup {
			return nil, fmt.Errorf("%q: channel %s given twice", part, ch)
		}
		out[ch] = Limit{PerSecond: perSec, Burst: burst}
	}
	return out, nil
}

// Set is the limiters of one process, by channel; a channel without a limit
// is not throttled.
type Set struct {
	lims map[string]*rate.Limiter
}

// NewSet builds limiters from parsed limits.
func NewSet(limits map[string]Limit) *Set {
	s := &Set{lims: map[string]*rate.Limiter{}}
	for ch, l := range limits {
		s.lims[ch] = rate.NewLimiter(rate.Limit(l.PerSecond), l.Burst)
	}
	return s
}

// Chunk is how many notifications of channel may be reserved at once: the
// burst, or n when the channel is not limited.
func (s *Set) Chunk(channel string, n int) int {
	l, ok := s.lims[channel]
	if !ok {
		return n
	}
	return min(n, l.Burst())
}

// Reserve takes n tokens (n at most Chunk) and returns how long the caller
// must wait before sending them.
func (s *Set) Reserve(channel string, n int, now time.Time) time.Duration {
	l, ok := s.lims[channel]
	if !ok || n == 0 {
		return 0
	}
	r := l.ReserveN(now, n)
	if !r.OK() {
		// n exceeds the burst: cannot happen through Chunk; wait a full burst period.
		return time.Duration(float64(n) / float64(l.Limit()) * float64(time.Second))
	}
	return r.DelayFrom(now)
}
