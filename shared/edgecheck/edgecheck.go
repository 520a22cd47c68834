// Package edgecheck reads a region's edge stream back and gives the
// exactly-once verdict (every expected notification id once: no duplicate,
// none missing, none unexpected, Nats-Msg-Id and subject matching the
// payload). The e2e tests, the e2e bench and the notifier bench share it, so
// "exactly once" means the same thing in all of them.
package edgecheck

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"backinstock/topics/edge"
)

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

// LastSeq is the last sequence of the region's edge stream.
func LastSeq(ctx context.Context, js jetstream.JetStream, region string) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, edge.StreamName(region))
	if err != nil {
		return 0, fmt.Errorf("edge stream %s: %w", edge.StreamName(region), err)
	}
	return st.CachedInfo().State.LastSeq, nil
}

// Collect reads the region's stream from sequence from (1: everything) up to
// its last sequence at the time of the call, keeping what keep accepts
// (nil: all). Reading is by an ordered consumer, so it survives nothing but
// needs no cleanup.
func Collect(ctx context.Context, js jetstream.JetStream, region string, from uint64, keep func(*Delivered) bool) ([]Delivered, error) {
	last, err := LastSeq(ctx, js, region)
	if err != nil {
		return nil, err
	}
	if from < 1 {
		from = 1
	}
	if last < from {
		return nil, nil
	}
	cons, err := js.OrderedConsumer(ctx, edge.StreamName(region), jetstream.OrderedConsumerConfig{
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
	// A few examples of each kind, so one kind in bulk does not hide another.
	kinds := map[string]int{}
	example := func(kind, format string, args ...any) {
		if kinds[kind] < 2 {
			kinds[kind]++
			c.Examples = append(c.Examples, kind+" "+fmt.Sprintf(format, args...))
		}
	}
	for _, d := range got {
		seen[d.NotificationID]++
		if seen[d.NotificationID] == 2 {
			example("duplicate", "%s (%s, seq %d)", d.NotificationID, d.Subject, d.Seq)
		}
		if d.MsgID != d.NotificationID || d.Subject != edge.Subject(d.Region, d.Channel, d.UserID) {
			c.BadHeaders++
			example("bad header/subject:", "msg-id %q subject %q for %s", d.MsgID, d.Subject, d.NotificationID)
		}
		if !expected[d.NotificationID] && seen[d.NotificationID] == 1 {
			c.Unexpected++
			example("unexpected", "%s: user %s sku %s channel %s episode %d", d.NotificationID, d.UserID, d.SKU, d.Channel, d.Episode)
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
	for _, id := range missing {
		example("missing", "%s", id)
	}
	return c
}
