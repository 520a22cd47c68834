// Package pipeline is the notifier's delivery protocol for one region. Per
// batch of notify records:
//
//  1. decode; poison records (undecodable, invalid, for another region or
//     channel, keyed other than by their user id) are rejected to the
//     dead-letter topic;
//  2. drop stale notifications (the sku sold out again);
//  3. look up the Redis sent markers and skip what was sent (layer 2);
//  4. hold notifications inside the recipient's quiet hours in Redis;
//  5. per rate-limit chunk: wait for tokens with the partition paused, wait
//     out an operator's pause of the channel (shared/pause) the same way,
//     read the recipients' opt-out records (one pipelined round trip) and
//     drop what a user unsubscribed or opted out of since the fan-out, publish
//     to JetStream with Nats-Msg-Id = notification_id (layer 1), await every
//     PubAck, then write the sent markers;
//  6. return nil, and only then the runner commits the offsets.
//
// A crash anywhere leaves the batch uncommitted; its replay is absorbed by
// the markers (after step 5) or by the stream's duplicate window (between
// publish and marker). See docs/delivery-semantics.md.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/services/notifier/internal/edge"
	"backinstock/services/notifier/internal/quiet"
	"backinstock/services/notifier/internal/ratelimit"
	"backinstock/services/notifier/internal/store"
	"backinstock/shared/kafka"
	"backinstock/shared/pause"
	"backinstock/shared/stockview"
	"backinstock/topics/catalog"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
	"backinstock/topics/optout"
)

// Crash points of the protocol, for the crash tests' hook.
const (
	AfterReserve = "after-reserve" // after the dedupe lookup (and holds), before publishing
	AfterPublish = "after-publish" // published and flushed, before the PubAcks
	AfterPubAck  = "after-puback"  // acknowledged, before the markers
	AfterMark    = "after-mark"    // markers written, before the offset commit
)

// CrashPoints lists them in protocol order.
var CrashPoints = []string{AfterReserve, AfterPublish, AfterPubAck, AfterMark}

// Options wire a Processor.
type Options struct {
	Region string
	Store  *store.Store
	Pub    *edge.Publisher
	Limits *ratelimit.Set
	Stock  StockLevels // the region's stock; unset, nothing is stale
	// OptOuts reads the recipients' opt-out records (shared/optoutcheck);
	// unset, nothing is suppressed.
	OptOuts OptOuts
	Now     func() time.Time
	Metrics *Metrics
	Log     *zap.Logger
	// Pause, when set, is the operator's pause (shared/pause): nothing of
	// a paused channel is published; a batch waits with its partition
	// paused, and held notifications stay held.
	Pause *pause.Watcher
	// Crash, when set, is called at each crash point (test hook).
	Crash func(point string)
}

// StockLevels is what the stale drop needs of shared/stockview.View.
type StockLevels interface {
	Get(sku string) (stockview.Level, bool)
}

// OptOuts is what the late opt-out check needs of shared/optoutcheck.Reader.
type OptOuts interface {
	States(ctx context.Context, users []string) (map[string]optout.State, error)
}

// noOptOuts knows no opt-out: a notifier without a reader suppresses nothing.
type noOptOuts struct{}

func (noOptOuts) States(context.Context, []string) (map[string]optout.State, error) {
	return nil, nil
}

// noStock knows no sku: a notifier without a stock view drops nothing.
type noStock struct{}

func (noStock) Get(string) (stockview.Level, bool) { return stockview.Level{}, false }

// Stale reports whether the notification's sku is sold out now at its
// episode or a later one: sending it would only disappoint. A later episode
// that is in stock is not stale: the shopper is told (once, by this
// episode's id) and the next restock has its own notifications.
func Stale(n events.Notification, now stockview.Level, known bool) bool {
	return known && now.Quantity == 0 && now.Episode >= n.Episode
}

// Processor handles batches for the consumer-group runner and releases held
// notifications.
type Processor struct {
	o     Options
	zones quiet.Zones
}

var _ kafka.Handler = (*Processor)(nil)

// New builds a processor.
func New(o Options) *Processor {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Limits == nil {
		o.Limits = ratelimit.NewSet(nil)
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, o.Region)
	}
	if o.Crash == nil {
		o.Crash = func(string) {}
	}
	if o.Stock == nil {
		o.Stock = noStock{}
	}
	if o.OptOuts == nil {
		o.OptOuts = noOptOuts{}
	}
	return &Processor{o: o}
}

type cand struct {
	n    events.Notification
	data []byte
}

// Handle runs the protocol on one batch.
func (p *Processor) Handle(ctx context.Context, b *kafka.Batch) error {
	m := p.o.Metrics
	// Not a notify topic: channel stays "", so decode rejects every record.
	_, channel, _ := catalog.ParseNotify(b.Topic)
	m.Consumed.WithLabelValues(channel).Add(float64(len(b.Records)))
	cands := make([]cand, 0, len(b.Records))
	for _, rec := range b.Records {
		c, err := p.decode(rec, channel)
		if err != nil {
			b.Reject(rec, err)
			continue
		}
		if p.stale(c.n) {
			m.DroppedStale.WithLabelValues(channel).Inc()
			continue
		}
		cands = append(cands, c)
	}
	return p.deliver(ctx, b, channel, cands)
}

func (p *Processor) stale(n events.Notification) bool {
	now, known := p.o.Stock.Get(n.SKU)
	return Stale(n, now, known)
}

func (p *Processor) decode(rec *sarama.ConsumerMessage, channel string) (cand, error) {
	n, err := events.DecodeNotification(rec.Value)
	if err != nil {
		return cand{}, err
	}
	if n.Region != p.o.Region || n.Channel != channel {
		return cand{}, fmt.Errorf("notification for %s/%s on topic of %s/%s", n.Region, n.Channel, p.o.Region, channel)
	}
	// The key is the user id (topics/README.md): it orders a user's
	// notifications on one partition. A record keyed otherwise is a producer
	// bug, dead-lettered like the fan-out's mis-keyed restock.
	if rec.Key == nil {
		return cand{}, fmt.Errorf("record key is null, not the notification's user_id %q", n.UserID)
	}
	if string(rec.Key) != n.UserID {
		return cand{}, fmt.Errorf("record key %q is not the notification's user_id %q", rec.Key, n.UserID)
	}
	return cand{n: n, data: rec.Value}, nil
}

// deliver runs steps 3–5 for candidates of one channel; b is nil for the
// releaser (nothing to pause, nothing to hold). Each step filters cands in
// place, so the caller gives the slice up: a cand is a few hundred bytes,
// and copying a batch of them into fresh slices at every step was a tenth
// of the notifier's CPU in the 1M profile (memmove and page faults).
func (p *Processor) deliver(ctx context.Context, b *kafka.Batch, channel string, cands []cand) error {
	m := p.o.Metrics
	fresh, err := p.unsent(ctx, channel, cands)
	if err != nil {
		return err
	}
	send := fresh
	if b != nil {
		if send, err = p.hold(ctx, channel, fresh); err != nil {
			return err
		}
	}
	p.o.Crash(AfterReserve)
	for len(send) > 0 {
		k := p.o.Limits.Chunk(channel, len(send))
		chunk := send[:k]
		send = send[k:]
		if d := p.o.Limits.Reserve(channel, k, p.o.Now()); d > 0 {
			m.Throttled.WithLabelValues(channel).Add(float64(k))
			m.ThrottleWait.WithLabelValues(channel).Add(d.Seconds())
			// A batch's partition is paused while it waits, and the wait
			// ends when the batch is revoked; the releaser just sleeps.
			if b != nil {
				err = b.Wait(ctx, d)
			} else {
				err = sleep(ctx, d)
			}
			if err != nil {
				return err
			}
		}
		if err := p.waitResumed(ctx, b, channel); err != nil {
			return err
		}
		if chunk, err = p.permitted(ctx, channel, chunk); err != nil {
			return err
		}
		if len(chunk) == 0 {
			continue
		}
		if err := p.publish(ctx, channel, chunk); err != nil {
			return err
		}
	}
	return nil
}

// hold keeps the candidates inside their recipient's quiet hours in the
// held set, to be released when the hours end, and drops them from cands,
// in place.
func (p *Processor) hold(ctx context.Context, channel string, cands []cand) ([]cand, error) {
	var holds []store.Held
	now := p.o.Now()
	send := cands[:0]
	for _, c := range cands {
		if rel, ok := p.releaseAt(now, c.n); ok {
			holds = append(holds, store.Held{ID: c.n.NotificationID, Release: rel, Payload: c.data})
			continue
		}
		send = append(send, c)
	}
	if err := p.o.Store.Hold(ctx, holds); err != nil {
		return nil, err
	}
	p.o.Metrics.Held.WithLabelValues(channel).Add(float64(len(holds)))
	return send, nil
}

// errPaused ends a release of a paused channel's notifications: they stay
// held until it is resumed.
var errPaused = errors.New("channel paused by an operator")

// waitResumed returns once channel is not paused, checked just before
// each publish (after any rate-limit wait), so a pause stops the edge
// within one chunk. A batch waits with its partition's fetching paused,
// so the paused work stays in Kafka; it gives way to a rebalance or a
// shutdown as every wait does.
func (p *Processor) waitResumed(ctx context.Context, b *kafka.Batch, channel string) error {
	if p.o.Pause == nil {
		return nil
	}
	g := p.o.Pause.Gate(channel)
	for g.IsPaused() {
		if b == nil {
			return errPaused
		}
		if err := b.Hold(ctx, g.Resumed()); err != nil {
			return err
		}
	}
	return nil
}

// permitted drops the notifications whose recipient has opted out of
// their channel (or unsubscribed) since the fan-out copied the
// preferences: the user's opt-out record, which the wishlist writes before
// it answers the change, read as late as possible (after the rate-limit
// wait, right before the publish) with one round trip per chunk. A
// suppressed notification gets no sent marker: it was not sent, and the
// batch's offsets are committed as for the rest. It filters chunk in place.
func (p *Processor) permitted(ctx context.Context, channel string, chunk []cand) ([]cand, error) {
	users := make([]string, len(chunk))
	for i, c := range chunk {
		users[i] = c.n.UserID
	}
	states, err := p.o.OptOuts.States(ctx, users)
	if err != nil {
		return nil, err
	}
	if len(states) == 0 {
		return chunk, nil
	}
	out := chunk[:0]
	for _, c := range chunk {
		reason, suppressed := states[c.n.UserID].Suppresses(c.n.Channel)
		if !suppressed {
			out = append(out, c)
			continue
		}
		p.o.Metrics.Suppressed.WithLabelValues(channel, reason).Inc()
		if reason == optout.ReasonUnreadable {
			p.o.Log.Warn("opt-out record unreadable; notification suppressed", zap.String("user_id", c.n.UserID), zap.String("notification_id", c.n.NotificationID))
		}
	}
	return out, nil
}

// unsent drops candidates whose sent marker exists, in place.
func (p *Processor) unsent(ctx context.Context, channel string, cands []cand) ([]cand, error) {
	if len(cands) == 0 {
		return nil, nil
	}
	refs := make([]store.Ref, len(cands))
	for i, c := range cands {
		refs[i] = sentRef(c.n)
	}
	sent, err := p.o.Store.Sent(ctx, refs)
	if err != nil {
		return nil, err
	}
	out := cands[:0]
	for i, c := range cands {
		if !sent[i] {
			out = append(out, c)
		}
	}
	if d := len(cands) - len(out); d > 0 {
		p.o.Metrics.Deduped.WithLabelValues(channel, "redis").Add(float64(d))
	}
	return out, nil
}

func sentRef(n events.Notification) store.Ref {
	return store.Ref{UserID: n.UserID, SKU: n.SKU, Episode: n.Episode, Channel: n.Channel}
}

func (p *Processor) releaseAt(now time.Time, n events.Notification) (time.Time, bool) {
	if n.QuietHours == nil || n.TimeZone == "" {
		return time.Time{}, false
	}
	w, err := quiet.ParseWindow(n.QuietHours.Start, n.QuietHours.End)
	if err != nil {
		return time.Time{}, false // validated on decode; unreachable
	}
	loc, err := p.zones.Load(n.TimeZone)
	if err != nil {
		// A zone this host's tz database lacks: send rather than hold forever.
		p.o.Log.Warn("unknown time zone; quiet hours ignored", zap.String("time_zone", n.TimeZone), zap.Error(err))
		return time.Time{}, false
	}
	held, rel := quiet.ReleaseAt(now, loc, w)
	return rel, held
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *Processor) publish(ctx context.Context, channel string, chunk []cand) error {
	m := p.o.Metrics
	items := make([]edge.Item, len(chunk))
	refs := make([]store.Ref, len(chunk))
	for i, c := range chunk {
		items[i] = edge.Item{Subject: topicsedge.Subject(p.o.Region, c.n.Channel, c.n.UserID), MsgID: c.n.NotificationID, Data: c.data}
		refs[i] = sentRef(c.n)
	}
	start := time.Now()
	pending := p.o.Pub.Publish(items)
	p.o.Crash(AfterPublish)
	nd, err := pending.Wait(ctx)
	if err != nil {
		m.EdgeFailures.WithLabelValues(channel).Inc()
		return fmt.Errorf("publish %d notifications to the edge: %w", len(items), err)
	}
	m.PublishTime.WithLabelValues(channel).Observe(time.Since(start).Seconds())
	p.o.Crash(AfterPubAck)
	if err := p.o.Store.MarkSent(ctx, refs); err != nil {
		return err
	}
	p.o.Crash(AfterMark)
	m.Sent.WithLabelValues(channel).Add(float64(len(items) - nd))
	if nd > 0 {
		m.Deduped.WithLabelValues(channel, "jetstream").Add(float64(nd))
	}
	return nil
}

// ReleaseDue publishes held notifications whose quiet hours have ended and
// removes them from the held set; it returns how many it handled.
func (p *Processor) ReleaseDue(ctx context.Context, limit int) (int, error) {
	due, err := p.o.Store.Due(ctx, p.o.Now(), limit)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	// A channel's held ids are taken before deliver filters its cands in
	// place, and released only if the channel's notifications went out.
	type release struct {
		cands []cand
		ids   []string
	}
	byChannel := map[string]*release{}
	ids := make([]string, 0, len(due))
	for _, h := range due {
		n, err := events.DecodeNotification(h.Payload)
		if err != nil {
			p.o.Log.Warn("held notification undecodable; dropped", zap.String("notification_id", h.ID), zap.Error(err))
			ids = append(ids, h.ID)
			continue
		}
		if p.o.Pause != nil && p.o.Pause.Gate(n.Channel).IsPaused() {
			continue // stays held until the channel is resumed
		}
		if p.stale(n) {
			// Sold out again while it waited for the quiet hours to end.
			p.o.Metrics.DroppedStale.WithLabelValues(n.Channel).Inc()
			ids = append(ids, h.ID)
			continue
		}
		r := byChannel[n.Channel]
		if r == nil {
			r = &release{}
			byChannel[n.Channel] = r
		}
		r.cands = append(r.cands, cand{n: n, data: h.Payload})
		r.ids = append(r.ids, h.ID)
	}
	for ch, r := range byChannel {
		if err := p.deliver(ctx, nil, ch, r.cands); err != nil {
			if errors.Is(err, errPaused) {
				// Paused since the check above: these stay held; what the
				// other channels published is released below.
				continue
			}
			return 0, err
		}
		ids = append(ids, r.ids...)
		p.o.Metrics.Released.WithLabelValues(ch).Add(float64(len(r.ids)))
	}
	if len(ids) == 0 {
		return 0, nil
	}
	if err := p.o.Store.Release(ctx, ids); err != nil {
		return 0, err
	}
	return len(ids), nil
}

// RunReleaser releases due notifications every interval until ctx ends.
// Errors (Redis or the edge away) are logged and retried at the next tick:
// a held notification stays in Redis until it is acknowledged.
func (p *Processor) RunReleaser(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := p.ReleaseDue(ctx, 500)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				p.o.Log.Warn("release held notifications", zap.Error(err))
				break
			}
			if n < 500 {
				break
			}
		}
		if c, err := p.o.Store.HeldCount(ctx); err == nil {
			p.o.Metrics.HeldPending.Set(float64(c))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
