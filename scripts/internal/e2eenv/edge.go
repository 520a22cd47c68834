package e2eenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"backinstock/shared/natsconn"
	"backinstock/topics/edge"
)

// Edge reads what reached the NATS edge, with a service user's credentials,
// as a channel gateway would.
type Edge struct {
	NC *nats.Conn
	JS jetstream.JetStream
}

// ConnectEdge connects to the stack's NATS (reconnecting forever, so it
// outlives a NATS outage).
func (s *Stack) ConnectEdge() (*Edge, error) {
	nc, js, err := natsconn.Connect(s.NATS.URL(), natsconn.Options{Name: "e2eenv", CredsFile: s.ClientCreds}, zap.NewNop())
	if err != nil {
		return nil, err
	}
	return &Edge{NC: nc, JS: js}, nil
}

// Close closes the connection.
func (e *Edge) Close() { e.NC.Close() }

// State is a stream's message count and last sequence.
func (e *Edge) State(ctx context.Context, region string) (msgs, last uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := e.JS.Stream(ctx, edge.StreamName(region))
	if err != nil {
		return 0, 0, fmt.Errorf("edge stream %s: %w", edge.StreamName(region), err)
	}
	info := st.CachedInfo()
	return info.State.Msgs, info.State.LastSeq, nil
}

// Delivered is one notification held by the edge stream.
type Delivered struct {
	Seq            uint64
	Subject        string
	MsgID          string
	NotificationID string `json:"notification_id"`
	UserID         string `json:"user_id"`
	SKU            string `json:"sku"`
	Region         string `json:"region"`
	Channel        string `json:"channel"`
	Episode        int64  `json:"episode"`
	// At is when the stream stored the message.
	At time.Time `json:"-"`
}

// Collect reads the region's stream from sequence from (1: everything) up to
// its last sequence at the time of the call, keeping what keep accepts
// (nil: all). Reading is by an ordered consumer, so it survives nothing but
// needs no cleanup.
func (e *Edge) Collect(ctx context.Context, region string, from uint64, keep func(*Delivered) bool) ([]Delivered, error) {
	_, last, err := e.State(ctx, region)
	if err != nil {
		return nil, err
	}
	if from < 1 {
		from = 1
	}
	if last < from {
		return nil, nil
	}
	cons, err := e.JS.OrderedConsumer(ctx, edge.StreamName(region), jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	})
	if err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", edge.StreamName(region), err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", edge.StreamName(region), err)
	}
	defer it.Stop()
	var out []Delivered
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return out, fmt.Errorf("read %s up to seq %d: %w", edge.StreamName(region), last, err)
		}
		meta, err := m.Metadata()
		if err != nil {
			return out, err
		}
		d := Delivered{Seq: meta.Sequence.Stream, Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), At: meta.Timestamp}
		if err := json.Unmarshal(m.Data(), &d); err != nil {
			return out, fmt.Errorf("edge message %d on %s is not a notification: %w", d.Seq, d.Subject, err)
		}
		if keep == nil || keep(&d) {
			out = append(out, d)
		}
		if d.Seq >= last {
			return out, nil
		}
	}
}

// Counts is the exactly-once verdict of one scenario.
type Counts struct {
	Scenario   string
	Expected   int
	Delivered  int
	Distinct   int
	Duplicates int
	Missing    int
	// Unexpected are distinct notifications nobody should have had.
	Unexpected int
	// BadHeaders have a Nats-Msg-Id other than their notification_id, or a
	// subject that does not match the payload.
	BadHeaders int
	Examples   []string
}

// OK is the exactly-once condition.
func (c Counts) OK() bool {
	return c.Duplicates == 0 && c.Missing == 0 && c.Unexpected == 0 && c.BadHeaders == 0 && c.Distinct == c.Expected
}

func (c Counts) String() string {
	s := fmt.Sprintf("%-28s expected=%d delivered=%d distinct=%d duplicates=%d missing=%d unexpected=%d bad_headers=%d",
		c.Scenario, c.Expected, c.Delivered, c.Distinct, c.Duplicates, c.Missing, c.Unexpected, c.BadHeaders)
	if len(c.Examples) > 0 {
		s += "\n  e.g. " + strings.Join(c.Examples, "\n  e.g. ")
	}
	return s
}

// Tally compares what reached the edge with the expected notification ids.
func Tally(scenario string, expected map[string]bool, got []Delivered) Counts {
	c := Counts{Scenario: scenario, Expected: len(expected), Delivered: len(got)}
	seen := map[string]int{}
	example := func(format string, args ...any) {
		if len(c.Examples) < 5 {
			c.Examples = append(c.Examples, fmt.Sprintf(format, args...))
		}
	}
	for _, d := range got {
		seen[d.NotificationID]++
		if seen[d.NotificationID] == 2 {
			example("duplicate %s (%s, seq %d)", d.NotificationID, d.Subject, d.Seq)
		}
		if d.MsgID != d.NotificationID || d.Subject != edge.Subject(d.Region, d.Channel, d.UserID) {
			c.BadHeaders++
			example("bad header/subject: msg-id %q subject %q for %s", d.MsgID, d.Subject, d.NotificationID)
		}
		if !expected[d.NotificationID] && seen[d.NotificationID] == 1 {
			c.Unexpected++
			example("unexpected %s: user %s sku %s channel %s episode %d", d.NotificationID, d.UserID, d.SKU, d.Channel, d.Episode)
		}
	}
	c.Distinct = len(seen)
	c.Duplicates = c.Delivered - c.Distinct
	var missing []string
	for id := range expected {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	c.Missing = len(missing)
	for _, id := range missing[:min(3, len(missing))] {
		example("missing %s", id)
	}
	return c
}

// ErrTimeout marks a wait that ran out.
var ErrTimeout = errors.New("timed out")

// WaitCount polls the region's stream until at least n messages arrived
// after baseline (a LastSeq taken before), or timeout passes.
func (e *Edge) WaitCount(ctx context.Context, region string, baseline, n uint64, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	var got uint64
	for {
		_, last, err := e.State(ctx, region)
		if err == nil {
			got = last - baseline
			if got >= n {
				return got, nil
			}
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%w: %d of %d notifications at the edge of %s after %s", ErrTimeout, got, n, region, timeout)
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// WaitQuiet waits until the region's stream has not grown for quiet, so
// late duplicates or stragglers would have been seen, or timeout passes.
func (e *Edge) WaitQuiet(ctx context.Context, region string, quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last uint64
	since := time.Now()
	for {
		_, l, err := e.State(ctx, region)
		if err == nil && l != last {
			last, since = l, time.Now()
		}
		if time.Since(since) >= quiet {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: edge stream of %s still growing after %s", ErrTimeout, region, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
