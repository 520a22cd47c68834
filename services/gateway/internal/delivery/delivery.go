// Package delivery is the gateway's protocol for one edge message: at most
// one provider call per notification in every case the design controls,
// and an outcome on delivery.status.v1 for every notification, written
// before the edge message is acknowledged.
//
//  1. decode strictly; a notification that fails validation but still names
//     itself gets a failed receipt, one that does not is dropped (term);
//  2. claim the notification in Redis (SET NX: the same round trip finds
//     the delivered marker): marked → write its receipt again, ack; another
//     sender holds it → retry later;
//  3. wait for the provider's shared rate limit, if it has one, and renew
//     the claim after a long wait; read the user's opt-out record
//     (topics/optout): unsubscribed or opted out of the channel since the
//     fan-out → release the claim, write a suppressed receipt, ack; call
//     the provider (render, send);
//  4. accepted → replace the claim with the delivered marker;
//  5. write the sent receipt (idempotent producer, acks=all);
//  6. ack the edge message.
//
// A permanent failure releases the claim, writes a failed receipt and acks;
// a transient one releases the claim and hands the message back with a
// delay, until the last attempt, which is failed. Redis or Kafka being
// away never spends an attempt: those steps are retried in place (the
// edge consumer keeps the message alive meanwhile), so an outage stalls the
// gateway instead of failing notifications. Each crash point and what the
// redelivery meets: docs/delivery-semantics.md.
package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"

	"backinstock/services/gateway/internal/edge"
	"backinstock/services/gateway/internal/receipts"
	"backinstock/services/gateway/internal/retry"
	"backinstock/services/gateway/internal/store"
	"backinstock/shared/config"
	"backinstock/shared/pause"
	"backinstock/topics/events"
	"backinstock/topics/optout"
)

// Crash points of the protocol, for the crash tests' hook.
const (
	AfterClaim   = "after-claim"   // claimed, before the provider is called
	AfterSend    = "after-send"    // the provider accepted, before the marker
	AfterMark    = "after-mark"    // marker written, before the receipt
	AfterReceipt = "after-receipt" // receipt acknowledged by Kafka, before the edge ack
)

// CrashPoints lists them in protocol order.
var CrashPoints = []string{AfterClaim, AfterSend, AfterMark, AfterReceipt}

// Provider delivers a notification on one channel. Send returns the
// provider's message id; its errors are classified (package retry).
type Provider interface {
	Name() string
	Send(ctx context.Context, n events.Notification) (providerMessageID string, err error)
}

// Limiter is a provider's rate limit shared by the region's replicas
// (package ratelimit). Wait returns once a send is allowed; an error means
// its store failed and nothing was granted.
type Limiter interface {
	Wait(ctx context.Context) error
}

type attemptKey struct{}

// WithAttempt is ctx carrying the delivery's attempt, for a provider that
// hands it on (the SMS status callback URL carries it, so a later receipt
// has the attempt of the send it reports on).
func WithAttempt(ctx context.Context, attempt int) context.Context {
	return context.WithValue(ctx, attemptKey{}, attempt)
}

// AttemptOf is the attempt WithAttempt put in ctx, 1 if none.
func AttemptOf(ctx context.Context) int {
	if a, ok := ctx.Value(attemptKey{}).(int); ok && a >= 1 {
		return a
	}
	return 1
}

// OptOuts is what the late opt-out check needs of
// shared/optoutcheck.Reader.
type OptOuts interface {
	State(ctx context.Context, userID string) (optout.State, error)
}

// noOptOuts knows no opt-out: a protocol without a reader suppresses nothing.
type noOptOuts struct{}

func (noOptOuts) State(context.Context, string) (optout.State, error) { return optout.State{}, nil }

// Options wire a Protocol.
type Options struct {
	Region, Channel string
	Provider        Provider
	// Limiter, when set, is waited for just before each provider call
	// (after the claim: a duplicate spends none of the provider's budget).
	Limiter Limiter
	// Gate is the operator's pause of the channel (shared/pause; nil:
	// never paused). The edge consumer starts nothing while it is paused;
	// the protocol checks it again after a rate-limit wait.
	Gate *pause.Gate
	// OptOuts reads the user's opt-out record right before each provider
	// call (shared/optoutcheck); unset, nothing is suppressed.
	OptOuts  OptOuts
	Store    *store.Store
	Receipts *receipts.Writer
	Policy   retry.Policy
	Metrics  *Metrics
	Log      *zap.Logger
	// Now and Rand replace the clock and the jitter's randomness.
	Now  func() time.Time
	Rand func() float64
	// Crash, when set, is called at each crash point (test hook). A crash
	// that returns (an in-process test) leaves the message unanswered, as
	// a dead process would.
	Crash func(point string) (abandon bool)
	// DependencyBackoff and DependencyMaxBackoff space the in-place retries
	// of Redis and Kafka.
	DependencyBackoff, DependencyMaxBackoff time.Duration
}

// Protocol handles the edge messages of one channel.
type Protocol struct {
	o   Options
	log *zap.Logger
}

// New builds the protocol; zero options take their defaults.
func New(o Options) *Protocol {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, o.Region)
	}
	if o.OptOuts == nil {
		o.OptOuts = noOptOuts{}
	}
	config.Default(&o.DependencyBackoff, 100*time.Millisecond)
	config.Default(&o.DependencyMaxBackoff, 5*time.Second)
	return &Protocol{o: o, log: o.Log.With(zap.String("channel", o.Channel), zap.String("provider", o.Provider.Name()))}
}

// abandoned is the outcome of a crash hook that returned: no answer at
// all, so JetStream redelivers after the ack wait, as for a dead process.
var abandoned = edge.Outcome{Action: edge.Abandon, Reason: "crash hook"}

func (p *Protocol) crash(point string) bool {
	return p.o.Crash != nil && p.o.Crash(point)
}

// Handle runs the protocol for one edge message. ctx ends only when the
// gateway stops for good (its stop timeout); until then every step that
// reaches Redis or Kafka is retried until it succeeds.
func (p *Protocol) Handle(ctx context.Context, d edge.Delivery) edge.Outcome {
	m, ch := p.o.Metrics, p.o.Channel
	n, err := events.DecodeNotification(d.Data)
	if err != nil {
		named, ok := p.salvage(d.Data)
		if !ok {
			m.Poison.WithLabelValues(ch).Inc()
			return edge.Outcome{Action: edge.Term, Reason: "not a notification: " + err.Error()}
		}
		m.Failed.WithLabelValues(ch, p.o.Provider.Name(), "invalid").Inc()
		return p.finish(ctx, d, receipts.Status(named, events.StatusFailed, p.o.Provider.Name(), "", d.Attempt, "invalid notification: "+err.Error(), p.o.Now()))
	}
	if n.Region != p.o.Region || n.Channel != ch {
		m.Failed.WithLabelValues(ch, p.o.Provider.Name(), "wrong_route").Inc()
		reason := fmt.Sprintf("notification for %s/%s on the %s/%s consumer (subject %s)", n.Region, n.Channel, p.o.Region, ch, d.Subject)
		return p.finish(ctx, d, receipts.Status(n, events.StatusFailed, p.o.Provider.Name(), "", d.Attempt, reason, p.o.Now()))
	}

	var claim store.Claim
	if !p.until(ctx, "redis", func(ctx context.Context) (err error) {
		claim, err = p.o.Store.Claim(ctx, n.UserID, n.NotificationID)
		return err
	}) {
		return edge.Outcome{Action: edge.Retry}
	}
	if out, taken := p.notOurs(ctx, d, n, claim); taken {
		return out
	}
	if p.crash(AfterClaim) {
		return abandoned
	}

	if p.o.Limiter != nil {
		// Waiting keeps the message: the consumer's in-progress acks hold
		// it, and a Redis failure is retried in place, never a send let
		// through.
		start := time.Now()
		if !p.until(ctx, "redis", p.o.Limiter.Wait) {
			return edge.Outcome{Action: edge.Retry}
		}
		// The claim lapses with the ack wait, which a slow limit can
		// outlast: once the wait has used a tenth of it, the claim is
		// renewed, which also tells whether another sender took the
		// notification meanwhile. (Not after every wait: a round trip
		// between the grant and the send is jitter the provider sees.)
		if time.Since(start) >= p.o.Policy.AckWait/10 {
			if !p.until(ctx, "redis", func(ctx context.Context) (err error) {
				claim, err = p.o.Store.Renew(ctx, claim)
				return err
			}) {
				return edge.Outcome{Action: edge.Retry}
			}
			if out, taken := p.notOurs(ctx, d, n, claim); taken {
				return out
			}
		}
		// Paused by an operator during the wait: hand it back unsent, to
		// wait in the stream, unless JetStream would not deliver it again
		// (its last attempt), which is sent as it was begun.
		if p.o.Gate.IsPaused() && !p.o.Policy.GiveUp(d.Attempt) {
			if !p.until(ctx, "redis", func(ctx context.Context) error { return p.o.Store.Release(ctx, claim) }) {
				return edge.Outcome{Action: edge.Retry}
			}
			return edge.Outcome{Action: edge.Retry, Delay: p.o.Policy.NakDelay(p.o.Rand())}
		}
	}
	if out, stop := p.suppressed(ctx, d, n, claim); stop {
		return out
	}
	start := time.Now()
	pmid, err := p.o.Provider.Send(WithAttempt(ctx, d.Attempt), n)
	m.SendTime.WithLabelValues(ch, p.o.Provider.Name()).Observe(time.Since(start).Seconds())
	if err != nil {
		return p.failed(ctx, d, n, claim, err)
	}
	if p.crash(AfterSend) {
		return abandoned
	}
	dl := store.Delivered{Provider: p.o.Provider.Name(), ProviderMessageID: pmid, Attempt: d.Attempt, At: p.o.Now().UTC()}
	if !p.until(ctx, "redis", func(ctx context.Context) error { return p.o.Store.MarkDelivered(ctx, claim, dl) }) {
		// Stopping with the marker unwritten: the redelivery sends again
		// (the bound in docs/delivery-semantics.md).
		return edge.Outcome{Action: edge.Retry}
	}
	if p.crash(AfterMark) {
		return abandoned
	}
	m.Sent.WithLabelValues(ch, dl.Provider).Inc()
	return p.finish(ctx, d, receipts.Status(n, events.StatusSent, dl.Provider, dl.ProviderMessageID, dl.Attempt, "", dl.At))
}

// notOurs answers a claim the caller does not hold: the marker (Done) or
// another sender's claim (Busy). taken is false for a claim it holds.
func (p *Protocol) notOurs(ctx context.Context, d edge.Delivery, n events.Notification, claim store.Claim) (out edge.Outcome, taken bool) {
	switch claim.State {
	case store.Done:
		// Sent before; the receipt may not have been written (a crash after
		// the marker): write it again, the same event.
		p.o.Metrics.Duplicates.WithLabelValues(p.o.Channel).Inc()
		dl := claim.Delivered
		return p.finish(ctx, d, receipts.Status(n, events.StatusSent, dl.Provider, dl.ProviderMessageID, dl.Attempt, "", dl.At)), true
	case store.Busy:
		// Another gateway is sending it right now; it will answer for it.
		p.o.Metrics.Busy.WithLabelValues(p.o.Channel).Inc()
		return edge.Outcome{Action: edge.Retry, Delay: p.o.Policy.NakDelay(p.o.Rand())}, true
	}
	return edge.Outcome{}, false
}

// suppressed reads the user's opt-out record as late as it can, after the
// claim and the rate-limit wait, one round trip before the provider call:
// a user who unsubscribed (or opted out of this channel) after the fan-out,
// while the notification waited in Kafka, in quiet hours or in the edge
// stream, is not sent it. The claim is released (nothing was sent; a later
// delivery of the same notification checks again), a suppressed receipt
// says why, and the message is acked. stop is false when the send may go.
func (p *Protocol) suppressed(ctx context.Context, d edge.Delivery, n events.Notification, claim store.Claim) (out edge.Outcome, stop bool) {
	var st optout.State
	if !p.until(ctx, "redis", func(ctx context.Context) (err error) {
		st, err = p.o.OptOuts.State(ctx, n.UserID)
		return err
	}) {
		return edge.Outcome{Action: edge.Retry}, true
	}
	reason, ok := st.Suppresses(n.Channel)
	if !ok {
		return edge.Outcome{}, false
	}
	if !p.until(ctx, "redis", func(ctx context.Context) error { return p.o.Store.Release(ctx, claim) }) {
		return edge.Outcome{Action: edge.Retry}, true
	}
	p.o.Metrics.Suppressed.WithLabelValues(p.o.Channel, reason).Inc()
	log := p.log.With(zap.String("notification_id", n.NotificationID), zap.String("user_id", n.UserID), zap.String("reason", reason))
	if reason == optout.ReasonUnreadable {
		log.Warn("opt-out record unreadable; notification suppressed")
	} else {
		log.Debug("notification suppressed: the user opted out after the fan-out")
	}
	return p.finish(ctx, d, receipts.Status(n, events.StatusSuppressed, p.o.Provider.Name(), "", d.Attempt, optout.Describe(reason, n.Channel), p.o.Now())), true
}

// failed handles a provider error: release the claim, then fail for good
// or retry later.
func (p *Protocol) failed(ctx context.Context, d edge.Delivery, n events.Notification, claim store.Claim, err error) edge.Outcome {
	m, ch, prov := p.o.Metrics, p.o.Channel, p.o.Provider.Name()
	if !p.until(ctx, "redis", func(ctx context.Context) error { return p.o.Store.Release(ctx, claim) }) {
		return edge.Outcome{Action: edge.Retry}
	}
	permanent, code := retry.Classify(err)
	log := p.log.With(zap.String("notification_id", n.NotificationID), zap.Int("attempt", d.Attempt), zap.String("reason", code), zap.Error(err))
	switch {
	case permanent:
		m.Failed.WithLabelValues(ch, prov, code).Inc()
		log.Info("delivery failed for good")
		return p.finish(ctx, d, receipts.Status(n, events.StatusFailed, prov, "", d.Attempt, err.Error(), p.o.Now()))
	case p.o.Policy.GiveUp(d.Attempt):
		m.Failed.WithLabelValues(ch, prov, "gave_up").Inc()
		log.Warn("delivery failed on its last attempt")
		reason := fmt.Sprintf("gave up after %d attempts: %v", d.Attempt, err)
		return p.finish(ctx, d, receipts.Status(n, events.StatusFailed, prov, "", d.Attempt, reason, p.o.Now()))
	}
	m.Retries.WithLabelValues(ch, prov, code).Inc()
	delay := p.o.Policy.Delay(p.o.Rand(), retry.RetryAfter(err))
	log.Debug("delivery failed; retrying", zap.Duration("in", p.o.Policy.Wait(d.Attempt, delay)))
	return edge.Outcome{Action: edge.Retry, Delay: delay}
}

// finish writes the receipt and acks.
func (p *Protocol) finish(ctx context.Context, d edge.Delivery, r events.DeliveryStatus) edge.Outcome {
	if !p.until(ctx, "kafka", func(ctx context.Context) error { return p.o.Receipts.Write(ctx, r, d.Traceparent) }) {
		return edge.Outcome{Action: edge.Retry}
	}
	p.o.Metrics.Receipts.WithLabelValues(p.o.Channel, r.Status).Inc()
	if p.crash(AfterReceipt) {
		return abandoned
	}
	return edge.Outcome{Action: edge.Ack}
}

// until runs op until it succeeds, backing off between tries, and reports
// false only when ctx ended first.
func (p *Protocol) until(ctx context.Context, dependency string, op func(context.Context) error) bool {
	backoff := p.o.DependencyBackoff
	for warned := false; ; {
		err := op(ctx)
		if err == nil {
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		p.o.Metrics.DependencyRetries.WithLabelValues(dependency).Inc()
		if !warned {
			p.log.Warn("dependency failed; retrying in place", zap.String("dependency", dependency), zap.Error(err))
			warned = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, p.o.DependencyMaxBackoff)
	}
}

// salvage reads what it can of a notification that failed validation: if
// it still names itself (valid ids, region, channel), its receipt can say
// why it failed.
func (p *Protocol) salvage(data []byte) (events.Notification, bool) {
	var n events.Notification
	if err := json.Unmarshal(data, &n); err != nil {
		return n, false
	}
	for _, e := range []error{
		events.CheckID("notification_id", n.NotificationID), events.CheckID("user_id", n.UserID),
		events.CheckID("sku", n.SKU), events.CheckRegion("region", n.Region),
	} {
		if e != nil {
			return n, false
		}
	}
	if !events.ValidChannel(n.Channel) {
		return n, false
	}
	return n, true
}
