// Package edge publishes notifications to the region's JetStream stream,
// the last hop before gateways and browsers. Every message carries
// Nats-Msg-Id = notification_id, so the stream's duplicate window drops a
// re-publish after a crash between publish and the Redis marker (the first
// layer of invariant 2).
package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StreamOptions size the region's edge stream.
type StreamOptions struct {
	// Duplicates is the de-duplication window: a crash-and-replay within it
	// cannot reach the edge twice even if Redis lost its markers.
	Duplicates time.Duration
	// MaxAge bounds how long messages stay (at least Duplicates, so the window
	// survives a server restart, which rebuilds it from stored messages).
	MaxAge   time.Duration
	MaxBytes int64
	Replicas int
}

// StreamName is the stream of a region: EDGE_<REGION> with '-' as '_'.
func StreamName(region string) string {
	return "EDGE_" + strings.ToUpper(strings.ReplaceAll(region, "-", "_"))
}

// Subject is where a notification goes.
func Subject(region, channel, userID string) string {
	return "edge." + region + "." + channel + "." + userID
}

// StreamConfig is the stream the notifier creates or updates at start.
func StreamConfig(region string, o StreamOptions) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        StreamName(region),
		Description: "backinstock notifications for " + region + " (edge.<region>.<channel>.<user_id>)",
		Subjects:    []string{"edge." + region + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  o.Duplicates,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		Replicas:    max(1, o.Replicas),
	}
}

// EnsureStream creates the stream or updates it to the configuration.
func EnsureStream(ctx context.Context, js jetstream.JetStream, region string, o StreamOptions) (jetstream.Stream, error) {
	if o.MaxAge > 0 && o.MaxAge < o.Duplicates {
		return nil, fmt.Errorf("edge stream %s: max age %s is shorter than the duplicate window %s", StreamName(region), o.MaxAge, o.Duplicates)
	}
	// Replicas starting together can meet a transient JetStream error (seen:
	// "error creating store for stream", err_code 10049) or a server that is
	// still starting; retry until ctx's deadline instead of exiting.
	// Each attempt has its own timeout: a request sent while the connection
	// is re-established can go unanswered, and must not use up the deadline.
	backoff := 100 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		s, err := js.CreateOrUpdateStream(actx, StreamConfig(region, o))
		cancel()
		if err == nil {
			return s, nil
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("create or update edge stream %s: %w", StreamName(region), err)
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// Item is one message to publish.
type Item struct {
	Subject string
	MsgID   string
	Data    []byte
}

// Publisher sends batches asynchronously and waits for every PubAck.
type Publisher struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	timeout time.Duration
}

// NewPublisher builds a publisher whose in-flight publishes are bounded by
// maxPending; a batch not fully acknowledged within timeout fails (the edge is
// down or slow) and the caller retries it.
func NewPublisher(nc *nats.Conn, maxPending int, timeout time.Duration) (*Publisher, error) {
	// The async timeout retires futures whose ack can never come (the
	// connection dropped after the write); without it they would hold their
	// place in maxPending forever and, after a few outages, stall publishing.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending), jetstream.WithPublishAsyncTimeout(timeout))
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Publisher{nc: nc, js: js, timeout: timeout}, nil
}

// JetStream is the publisher's JetStream context.
func (p *Publisher) JetStream() jetstream.JetStream { return p.js }

// ErrNotAcknowledged wraps failures of the edge to acknowledge a batch.
var ErrNotAcknowledged = errors.New("edge did not acknowledge")

// Pending is a batch in flight.
type Pending struct {
	p    *Publisher
	futs []jetstream.PubAckFuture
	err  error
}

// Publish starts publishing items; Wait collects the acknowledgements.
func (p *Publisher) Publish(items []Item) *Pending {
	pe := &Pending{p: p, futs: make([]jetstream.PubAckFuture, 0, len(items))}
	for _, it := range items {
		m := nats.NewMsg(it.Subject)
		m.Data = it.Data
		f, err := p.js.PublishMsgAsync(m, jetstream.WithMsgID(it.MsgID), jetstream.WithStallWait(p.timeout))
		if err != nil {
			pe.err = fmt.Errorf("%w: publish %s: %v", ErrNotAcknowledged, it.Subject, err)
			break
		}
		pe.futs = append(pe.futs, f)
	}
	return pe
}

// Flush makes sure the published messages left the client (used by the
// crash hook to kill the process after the server has them).
func (p *Publisher) Flush() error { return p.nc.FlushTimeout(p.timeout) }

// Wait returns, per item, whether the stream reported it as a duplicate, or
// an error when any item was not acknowledged in time.
func (pe *Pending) Wait(ctx context.Context) ([]bool, error) {
	if pe.err != nil {
		return nil, pe.err
	}
	t := time.NewTimer(pe.p.timeout)
	defer t.Stop()
	dups := make([]bool, len(pe.futs))
	for i, f := range pe.futs {
		select {
		case ack := <-f.Ok():
			dups[i] = ack.Duplicate
		case err := <-f.Err():
			return nil, fmt.Errorf("%w: %s: %v", ErrNotAcknowledged, f.Msg().Subject, err)
		case <-t.C:
			return nil, fmt.Errorf("%w within %s (%d of %d acknowledged)", ErrNotAcknowledged, pe.p.timeout, i, len(pe.futs))
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return dups, nil
}
