// Package retry holds the gateway's rules for a send that did not succeed:
// which failures are permanent (the notification ends with a failed
// receipt) and which are transient (it is tried again later), and when
// "later" is. No I/O: the edge consumer and the protocol apply what it says.
//
// Two schedules meet here, and one exponential serves both. A gateway that
// crashes or hangs holding a message gets it back from JetStream after the
// consumer's ack wait, which grows per delivery (the consumer's BackOff
// list: AckWait, 2·AckWait, 4·AckWait, … capped). A send that fails
// transiently is handed back at once with a delay (a NAK with delay), and
// nats-server counts that delay from the start of the delivery's back-off
// slot: the message returns after delay + BackOff[k-1] − BackOff[0] for
// delivery k (nats-server 2.10+ processNak sets the pending timestamp to
// now − AckWait + delay, and checks it against BackOff[k-1]). So the first
// retry comes after the jittered FirstRetry, and each later one after that
// plus the back-off's growth: with the defaults (2 s, ack wait 30 s) about
// 2 s, 32 s, 92 s, 212 s, … up to the cap — SMTP greylisting and a provider
// restart both fit inside it.
package retry

import (
	"errors"
	"fmt"
	"time"
)

// Error is a send failure the provider has classified.
type Error struct {
	// Permanent failures are never retried.
	Permanent bool
	// Code is a short, low-cardinality label for metrics and logs:
	// "smtp_550", "connection", "no_contact", "template".
	Code string
	Err  error
	// After is the earliest the provider wants a retry (HTTP Retry-After);
	// zero when it said nothing.
	After time.Duration
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Permanent marks err as a failure that will not go away by retrying: an
// SMTP 5xx, a missing or malformed contact, a template that fails on this
// record.
func Permanent(code string, err error) error {
	return &Error{Permanent: true, Code: code, Err: err}
}

// Transient marks err as a failure worth retrying: the connection, an SMTP
// 4xx, a provider that is down.
func Transient(code string, err error) error {
	return &Error{Code: code, Err: err}
}

// TransientAfter is Transient for a provider that asked to be retried no
// sooner than after (HTTP 429 or 503 with Retry-After).
func TransientAfter(code string, err error, after time.Duration) error {
	return &Error{Code: code, Err: err, After: max(after, 0)}
}

// RetryAfter is the earliest retry err's provider asked for, or zero.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.After
	}
	return 0
}

// Classify says whether err is permanent and gives its label. An error no
// provider classified is transient ("unknown"): retrying a bug costs
// attempts, giving up on an outage would lose notifications.
func Classify(err error) (permanent bool, code string) {
	var e *Error
	if errors.As(err, &e) {
		return e.Permanent, e.Code
	}
	return false, "unknown"
}

// Policy is the gateway's retry schedule.
type Policy struct {
	// AckWait is the processing budget of one delivery, and the first
	// redelivery delay after a gateway died holding the message.
	AckWait time.Duration
	// MaxAttempts bounds the deliveries of one notification (JetStream's
	// MaxDeliver). The last attempt's transient failure is final.
	MaxAttempts int
	// MaxBackoff caps the consumer's back-off list.
	MaxBackoff time.Duration
	// FirstRetry is the delay after the first transient failure (the NAK
	// delay, jittered to between half of it and all of it).
	FirstRetry time.Duration
}

// Validate names what is wrong with the policy.
func (p Policy) Validate() error {
	var errs []error
	if p.AckWait <= 0 {
		errs = append(errs, fmt.Errorf("ack wait must be positive, got %s", p.AckWait))
	}
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts must be at least 1, got %d", p.MaxAttempts))
	}
	if p.MaxBackoff < p.AckWait {
		errs = append(errs, fmt.Errorf("max back-off %s is shorter than the ack wait %s", p.MaxBackoff, p.AckWait))
	}
	if p.FirstRetry <= 0 {
		errs = append(errs, fmt.Errorf("first retry must be positive, got %s", p.FirstRetry))
	}
	return errors.Join(errs...)
}

// BackOff is the consumer's ack-wait schedule: AckWait doubling per
// delivery up to MaxBackoff, at most MaxAttempts entries (nats-server
// refuses a longer list) and no more than it takes to reach the cap (the
// server repeats the last entry).
func (p Policy) BackOff() []time.Duration {
	var out []time.Duration
	for d := p.AckWait; len(out) < max(p.MaxAttempts, 1); d *= 2 {
		if d >= p.MaxBackoff {
			out = append(out, p.MaxBackoff)
			break
		}
		out = append(out, d)
	}
	return out
}

// GiveUp reports whether a transient failure at attempt is the last one:
// JetStream will not deliver the message again.
func (p Policy) GiveUp(attempt int) bool { return attempt >= p.MaxAttempts }

// NakDelay is the delay to hand a transiently failed message back with at
// attempt: FirstRetry with equal jitter (half fixed, half random), so the
// messages of one outage do not all return in the same instant. rnd is a
// number in [0, 1).
func (p Policy) NakDelay(rnd float64) time.Duration {
	half := p.FirstRetry / 2
	return half + time.Duration(rnd*float64(p.FirstRetry-half))
}

// Delay is the NAK delay after a transient failure: the jittered
// NakDelay, or what the provider asked for when that is later, never past
// MaxBackoff (a Retry-After of a day must not park a notification beyond
// the schedule's cap).
func (p Policy) Delay(rnd float64, providerAfter time.Duration) time.Duration {
	return min(max(p.NakDelay(rnd), providerAfter), p.MaxBackoff)
}

// Wait is when a message NAKed with delay at attempt comes back: delay
// plus the growth of the back-off list up to that delivery (see the
// package comment).
func (p Policy) Wait(attempt int, delay time.Duration) time.Duration {
	bo := p.BackOff()
	i := min(max(attempt, 1), len(bo)) - 1
	return delay + bo[i] - bo[0]
}
