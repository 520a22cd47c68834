// Package pause is the operator's pause of a region's channels, shared by
// every replica of the region and by every service that delivers (the
// notifier towards the edge, the gateway towards the providers): the state
// kept in Redis (Store), each replica's view of it, polled and applied
// within a second (Watcher, one Gate per channel), and the admin routes
// that change and show it (Routes). Paused work is not buffered here: a
// service holds what it had already taken (a bounded batch, a few edge
// messages) and takes nothing more until the gate opens again, so the rest
// waits in Kafka or JetStream.
//
// The state is one small hash per region, polled rather than announced:
// HGETALL of a hash of at most four fields every PollInterval costs Redis
// nothing (a few replicas × 4/s), needs no connection of its own, and
// cannot miss a change the way a fire-and-forget pub/sub message is
// missed by a replica that was reconnecting (which would then need the
// poll anyway). The replica that takes the request applies it at once.
package pause

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/topics/events"
)

// Key is the hash holding region's paused channels: field = channel, value
// = the entry's JSON {"since", "operator", "reason"}. Hash-tagged by region
// (Redis Cluster), like the other per-region keys.
func Key(region string) string { return "pause:{" + region + "}" }

// Entry is one paused channel of a region.
type Entry struct {
	Channel string    `json:"channel"`
	Since   time.Time `json:"since"`
	// Operator and Reason are what the request that paused it said, if
	// anything.
	Operator string `json:"operator,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// State is a region's pause state: its paused channels, by channel name.
type State struct {
	Region string  `json:"region"`
	Paused []Entry `json:"paused"`
}

// Has reports whether channel is paused.
func (s State) Has(channel string) bool {
	return slices.ContainsFunc(s.Paused, func(e Entry) bool { return e.Channel == channel })
}

// stored is an entry's value in the hash.
type stored struct {
	Since    time.Time `json:"since"`
	Operator string    `json:"operator,omitempty"`
	Reason   string    `json:"reason,omitempty"`
}

// Store reads and writes the pause state in Redis.
type Store struct {
	rdb redis.UniversalClient
	now func() time.Time
}

// NewStore is a Store on rdb.
func NewStore(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb, now: time.Now} }

// Pause pauses channels of region. A channel already paused keeps its
// entry (since, operator, reason): pausing twice changes nothing.
func (s *Store) Pause(ctx context.Context, region string, channels []string, operator, reason string) error {
	v, err := json.Marshal(stored{Since: s.now().UTC(), Operator: operator, Reason: reason})
	if err != nil {
		return err
	}
	key := Key(region)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, ch := range channels {
			p.HSetNX(ctx, key, ch, v)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pause %s %v: %w", region, channels, err)
	}
	return nil
}

// Resume resumes channels of region; one not paused is left as it is.
func (s *Store) Resume(ctx context.Context, region string, channels []string) error {
	if err := s.rdb.HDel(ctx, Key(region), channels...).Err(); err != nil {
		return fmt.Errorf("resume %s %v: %w", region, channels, err)
	}
	return nil
}

// Load reads region's state. A field that is not a channel is ignored; a
// channel whose value cannot be read counts as paused (since unknown):
// when in doubt, the operator's pause holds.
func (s *Store) Load(ctx context.Context, region string) (State, error) {
	h, err := s.rdb.HGetAll(ctx, Key(region)).Result()
	if err != nil {
		return State{}, fmt.Errorf("read pause state of %s: %w", region, err)
	}
	st := State{Region: region, Paused: []Entry{}}
	for ch, v := range h {
		if !events.ValidChannel(ch) {
			continue
		}
		var e stored
		_ = json.Unmarshal([]byte(v), &e)
		st.Paused = append(st.Paused, Entry{Channel: ch, Since: e.Since, Operator: e.Operator, Reason: e.Reason})
	}
	slices.SortFunc(st.Paused, func(a, b Entry) int { return channelOrder(a.Channel) - channelOrder(b.Channel) })
	return st, nil
}

// channelOrder sorts entries as events.ChannelNames lists the channels.
func channelOrder(ch string) int { return slices.Index(events.ChannelNames(), ch) }
