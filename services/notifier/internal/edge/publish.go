package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/semaphore"
)

// Item is one message to publish.
type Item struct {
	Subject string
	MsgID   string
	Data    []byte
}

// Publisher sends batches to JetStream and waits for every PubAck.
//
// A JetStream publish is a core NATS message with a reply subject; the
// stream answers each message on it exactly once: a PubAck (maybe flagged
// duplicate) or an error. nats.go's async publish tracks every message on
// its own (a future with its channels, a map entry under a lock, a unique
// reply subject, a full JSON decode of the ack), which was a third of the
// notifier's CPU, and each unique reply subject is also a miss in the
// server's subject cache. The notifier only needs "did the whole batch land,
// and how many were duplicates", so a batch shares one reply subject,
// <inbox>.<batch>, on one wildcard subscription, and is done when it has as
// many acks as messages with no error among them. A success ack is read
// without a JSON decode (anything unusual gets the full decode).
//
// A publisher may publish over several connections (AddConn), a batch each
// in turn: the server reads one connection's messages, and the client one
// connection's acks, one at a time, which caps what a single connection
// carries. A batch stays on one connection, and the pipeline publishes a
// partition's next batch only after the last one's acks, so a user's
// notifications keep their order.
type Publisher struct {
	timeout  time.Duration
	inflight *semaphore.Weighted
	max      int64

	mu      sync.Mutex
	lanes   []lane
	next    uint64
	batches map[uint64]*Pending
}

// lane is one connection and the prefix its acks arrive on: a batch's acks
// arrive on prefix + "<batch>".
type lane struct {
	nc     *nats.Conn
	prefix string // <inbox>.
}

// NewPublisher builds a publisher whose in-flight publishes are bounded by
// maxPending; a batch not fully acknowledged within timeout fails (the edge is
// down or slow) and the caller retries it. It publishes on nc directly and
// needs no JetStream context; the stream is managed with the connection's.
func NewPublisher(nc *nats.Conn, maxPending int, timeout time.Duration) (*Publisher, error) {
	p := &Publisher{
		timeout:  timeout,
		inflight: semaphore.NewWeighted(int64(max(1, maxPending))), max: int64(max(1, maxPending)),
		batches: map[uint64]*Pending{},
	}
	return p, p.AddConn(nc)
}

// AddConn adds a connection to publish over; the in-flight bound stays the
// publisher's. Add them before the first Publish.
func (p *Publisher) AddConn(nc *nats.Conn) error {
	l := lane{nc: nc, prefix: nc.NewInbox() + "."}
	sub, err := nc.Subscribe(l.prefix+"*", func(m *nats.Msg) { p.onAck(l.prefix, m) })
	if err != nil {
		return fmt.Errorf("subscribe to publish acks: %w", err)
	}
	// In-flight publishes are bounded by maxPending, so are their acks: never
	// drop one as a slow consumer.
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return err
	}
	p.mu.Lock()
	p.lanes = append(p.lanes, l)
	p.mu.Unlock()
	return nil
}

// Flush waits until the server has everything published so far.
func (p *Publisher) Flush() error {
	p.mu.Lock()
	lanes := p.lanes
	p.mu.Unlock()
	for _, l := range lanes {
		if err := l.nc.FlushTimeout(p.timeout); err != nil {
			return err
		}
	}
	return nil
}

// ErrNotAcknowledged wraps failures of the edge to acknowledge a batch.
var ErrNotAcknowledged = errors.New("edge did not acknowledge")

// Pending is a batch in flight.
type Pending struct {
	p     *Publisher
	id    uint64
	items []Item
	held  int64 // units of p.inflight held until the batch ends

	// Under p.mu:
	dups int
	left int
	err  error
	done chan struct{}
}

// Publish starts publishing items; Wait collects the acknowledgements. It
// blocks while maxPending publishes are in flight, up to the timeout.
func (p *Publisher) Publish(items []Item) *Pending {
	pe := &Pending{p: p, items: items, left: len(items), done: make(chan struct{})}
	if len(items) == 0 {
		close(pe.done)
		return pe
	}
	// A batch larger than the bound takes all of it rather than waiting forever.
	pe.held = min(int64(len(items)), p.max)
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	err := p.inflight.Acquire(ctx, pe.held)
	cancel()
	if err != nil {
		pe.held = 0
		pe.err = fmt.Errorf("%w: %d publishes still in flight after %s", ErrNotAcknowledged, p.max, p.timeout)
		close(pe.done)
		return pe
	}
	p.mu.Lock()
	p.next++
	pe.id = p.next
	p.batches[pe.id] = pe
	l := p.lanes[pe.id%uint64(len(p.lanes))]
	p.mu.Unlock()
	reply := l.prefix + strconv.FormatUint(pe.id, 10)
	for _, it := range items {
		m := &nats.Msg{
			Subject: it.Subject,
			Reply:   reply,
			Header:  nats.Header{jetstream.MsgIDHeader: []string{it.MsgID}},
			Data:    it.Data,
		}
		if err := l.nc.PublishMsg(m); err != nil {
			p.fail(pe, fmt.Errorf("%w: publish %s: %v", ErrNotAcknowledged, it.Subject, err))
			break
		}
	}
	return pe
}

// Wait returns how many items the stream already had (duplicates inside its
// window) once every item is acknowledged, or an error wrapping
// ErrNotAcknowledged when one was refused or the timeout passed first.
func (pe *Pending) Wait(ctx context.Context) (int, error) {
	p := pe.p
	defer p.end(pe)
	t := time.NewTimer(p.timeout)
	defer t.Stop()
	select {
	case <-pe.done:
	case <-t.C:
		p.mu.Lock()
		acked := len(pe.items) - pe.left
		p.mu.Unlock()
		return 0, fmt.Errorf("%w within %s (%d of %d acknowledged)", ErrNotAcknowledged, p.timeout, acked, len(pe.items))
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe.err != nil {
		return 0, pe.err
	}
	return pe.dups, nil
}

// end forgets the batch (late acks are ignored) and frees its place.
func (p *Publisher) end(pe *Pending) {
	p.mu.Lock()
	delete(p.batches, pe.id)
	held := pe.held
	pe.held = 0
	p.mu.Unlock()
	if held > 0 {
		p.inflight.Release(held)
	}
}

// fail ends the batch with its first error.
func (p *Publisher) fail(pe *Pending, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pe.err == nil && pe.left > 0 {
		pe.err = err
		pe.left = 0
		close(pe.done)
	}
}

// onAck counts one PubAck (or refusal), arrived on prefix, against its
// batch.
func (p *Publisher) onAck(prefix string, m *nats.Msg) {
	batch, err := strconv.ParseUint(strings.TrimPrefix(m.Subject, prefix), 10, 64)
	if err != nil {
		return
	}
	dup, ackErr := parseAck(m)
	p.mu.Lock()
	defer p.mu.Unlock()
	pe := p.batches[batch]
	if pe == nil || pe.left == 0 {
		return // a batch that ended already
	}
	if ackErr != nil {
		pe.err = fmt.Errorf("%w: %s: %v", ErrNotAcknowledged, describe(pe.items), ackErr)
		pe.left = 0
		close(pe.done)
		return
	}
	if dup {
		pe.dups++
	}
	if pe.left--; pe.left == 0 {
		close(pe.done)
	}
}

// describe names a batch in an error.
func describe(items []Item) string {
	return fmt.Sprintf("%d messages to %s…", len(items), items[0].Subject)
}

var (
	ackPrefix = []byte(`{"stream":`)
	ackError  = []byte(`"error"`)
	ackDup    = []byte(`"duplicate"`)
)

// parseAck tells a stored message from a duplicate, or returns why the
// stream refused it. The stream writes its success acks from a template,
// {"stream":"S","seq":N} with ,"duplicate": true for a duplicate; those are
// read without a JSON decode. Anything else is decoded in full.
func parseAck(m *nats.Msg) (bool, error) {
	if len(m.Data) == 0 {
		if st := m.Header.Get("Status"); st != "" {
			// 503: no stream listens on the subject.
			return false, fmt.Errorf("status %s %s", st, m.Header.Get("Description"))
		}
		return false, errors.New("empty acknowledgement")
	}
	d := m.Data
	if bytes.HasPrefix(d, ackPrefix) && !bytes.Contains(d, ackError) {
		i := bytes.Index(d, ackDup)
		if i < 0 {
			return false, nil
		}
		rest := bytes.TrimLeft(d[i+len(ackDup):], ": ")
		return bytes.HasPrefix(rest, []byte("true")), nil
	}
	var ack struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Stream    string `json:"stream"`
		Duplicate bool   `json:"duplicate"`
	}
	if err := json.Unmarshal(d, &ack); err != nil {
		return false, fmt.Errorf("unreadable acknowledgement %q: %v", d, err)
	}
	if ack.Error != nil {
		return false, fmt.Errorf("%s (code %d, err_code %d)", ack.Error.Description, ack.Error.Code, ack.Error.ErrCode)
	}
	if ack.Stream == "" {
		return false, fmt.Errorf("acknowledgement without a stream: %q", d)
	}
	return ack.Duplicate, nil
}
