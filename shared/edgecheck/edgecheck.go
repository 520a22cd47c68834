// Package edgecheck reads a region's edge streams back and gives the
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
	"backinstock/topics/events"
)

// Delivered is one notification held by an edge stream.
type Delivered struct {
	Seq            uint64 // in its channel's stream
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

// Mark is where a region's edge stood: each channel stream's last sequence,
// by channel (absent: 0, nothing yet).
type Mark map[string]uint64

// Total is the sum of the streams' last sequences: how many messages the
// region's edge has stored so far, so it grows with every one.
func (m Mark) Total() uint64 {
	var t uint64
	for _, s := range m {
		t += s
	}
	return t
}

// State is how many messages a region's edge streams hold now and where
// they stand.
type State struct {
	Msgs uint64
	Last Mark
}

// Read returns the state of region's edge streams (topics/edge: one per
// channel) in one JetStream request: the benches and e2e tests poll it every
// few milliseconds while they measure.
func Read(ctx context.Context, js jetstream.JetStream, region string) (State, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	byName := map[string]jetstream.StreamState{}
	list := js.ListStreams(ctx, jetstream.WithStreamListSubject(edge.RegionFilter(region)))
	for info := range list.Info() {
		byName[info.Config.Name] = info.State
	}
	if err := list.Err(); err != nil {
		return State{}, fmt.Errorf("edge streams of %s: %w", region, err)
	}
	st := State{Last: Mark{}}
	for _, ch := range events.ChannelNames() {
		name := edge.StreamName(region, ch)
		info, ok := byName[name]
		if !ok {
			return State{}, fmt.Errorf("edge stream %s: %w", name, jetstream.ErrStreamNotFound)
		}
		st.Msgs += info.Msgs
		st.Last[ch] = info.LastSeq
	}
	return st, nil
}

// Collect reads the region's streams after mark (nil: everything) up to
// their last sequences at the time of the call, keeping what keep accepts
// (nil: all), channel by channel (in each, in stream order). Reading is by
// ordered consumers, so it survives nothing but needs no cleanup.
func Collect(ctx context.Context, js jetstream.JetStream, region string, after Mark, keep func(*Delivered) bool) ([]Delivered, error) {
	now, err := Read(ctx, js, region)
	if err != nil {
		return nil, err
	}
	var out []Delivered
	for _, ch := range events.ChannelNames() {
		if out, err = collect(ctx, js, edge.StreamName(region, ch), after[ch]+1, now.Last[ch], keep, out); err != nil {
			return out, err
		}
	}
	return out, nil
}

// collect appends the messages from..last of one stream to out.
func collect(ctx context.Context, js jetstream.JetStream, stream string, from, last uint64, keep func(*Delivered) bool, out []Delivered) ([]Delivered, error) {
	if last < from {
		return out, nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from,
	})
	if err != nil {
		return out, fmt.Errorf("ordered consumer on %s: %w", stream, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4096))
	if err != nil {
		return out, fmt.Errorf("read %s: %w", stream, err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return out, fmt.Errorf("read %s up to seq %d: %w", stream, last, err)
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
