// Package backoff is the one retry wait of the project: exponential, capped,
// with full jitter (a uniform wait in [0, min(cap, initial·2^n)]), so
// replicas that failed together — a broker restart, a Redis failover — do
// not retry together and hit the recovering server in lockstep.
//
// Hand-written on purpose: it is a dozen lines, and the common library
// (cenkalti/backoff) randomises by ±factor around the interval instead of
// full jitter, which keeps retries of a crowd correlated.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff hands out the waits of one retry loop; the zero value is not
// usable, use New. It is not safe for concurrent use (one per loop).
type Backoff struct {
	initial, max time.Duration
	ceiling      time.Duration
	// jitter returns a value in [0, 1); tests replace it.
	jitter func() float64
}

// New returns a Backoff whose first wait is at most initial and whose
// waits never exceed max.
func New(initial, max time.Duration) *Backoff {
	if initial <= 0 {
		initial = time.Millisecond
	}
	if max < initial {
		max = initial
	}
	return &Backoff{initial: initial, max: max, ceiling: initial, jitter: rand.Float64}
}

// Next is the wait before the next attempt: uniform in [0, ceiling], where
// the ceiling doubles after each call up to max.
func (b *Backoff) Next() time.Duration {
	d := time.Duration(b.jitter() * float64(b.ceiling+1))
	b.ceiling = min(2*b.ceiling, b.max)
	return d
}

// Ceiling is the largest wait Next can return now (for logs).
func (b *Backoff) Ceiling() time.Duration { return b.ceiling }

// Reset starts over after a success.
func (b *Backoff) Reset() { b.ceiling = b.initial }

// Wait sleeps Next() or until ctx ends; false when ctx ended first.
func (b *Backoff) Wait(ctx context.Context) bool {
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
