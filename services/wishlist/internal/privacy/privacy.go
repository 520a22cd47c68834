// Package privacy finds and erases what the other services keep about one
// person, for the wishlist's export (GDPR Art. 15) and erasure (Art. 17):
// the notifier's sent markers and quiet-hour holds, the gateway's claims,
// delivered markers and per-device progress (all in the Redis every
// deployment shares, at the keys topics/userdata names), and the person's
// notifications in each region's edge stream (JetStream, subjects
// edge.<region>.<channel>.<user>, topics/edge). The wishlist's own data is
// the service package's (service.Erase).
//
// Finding the per-user keys and the sent sets that hold the user walks the
// keyspace (one SCAN per pattern) and finding the holds walks each region's
// held hash: the cost of an erasure, which is rare, and never of a request
// path that runs per notification.
package privacy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"backinstock/shared/redisconn"
	"backinstock/topics/edge"
	"backinstock/topics/events"
	"backinstock/topics/userdata"
)

// ErrEdgeNotConfigured: without NATS the edge streams can be neither read
// nor purged, so neither an export nor an erasure would be complete.
var ErrEdgeNotConfigured = errors.New("the edge is not configured (NATS_URL)")

// MaxEdgeMessages bounds the edge messages one export returns per region;
// a person's notifications within the stream's age (days) are far fewer.
const MaxEdgeMessages = 10_000

// Finder reads and erases a user's data in the other services' stores.
type Finder struct {
	Redis redis.UniversalClient
	// JS is the edge's JetStream; nil: ErrEdgeNotConfigured.
	JS jetstream.JetStream
	// Regions are the regions whose held sets and edge streams are looked
	// at (the per-user keys are found in every region).
	Regions []string
}

// Data is what the other services keep about a user.
type Data struct {
	Notifier NotifierData  `json:"notifier"`
	Gateway  GatewayData   `json:"gateway"`
	Edge     []EdgeMessage `json:"edge"`
	// EdgeTruncated: a region held more than MaxEdgeMessages.
	EdgeTruncated bool `json:"edge_truncated,omitempty"`
}

// NotifierData is the notifier's part.
type NotifierData struct {
	Sent []Sent `json:"sent"`
	Held []Held `json:"held"`
}

// Sent is a sent marker: the notification reached the edge.
type Sent struct {
	Region         string     `json:"region"`
	NotificationID string     `json:"notification_id"`
	ExpiresAt      *time.Time `json:"expires_at,omitempty"`
}

// Held is a notification waiting for the end of the user's quiet hours.
type Held struct {
	Region         string          `json:"region"`
	NotificationID string          `json:"notification_id"`
	ReleaseAt      time.Time       `json:"release_at"`
	Notification   json.RawMessage `json:"notification"`
}

// GatewayData is the gateway's part.
type GatewayData struct {
	Deliveries []Delivery       `json:"deliveries"`
	Devices    []DeviceProgress `json:"devices"`
}

// Delivery is a claim (a gateway is sending it) or a delivered marker.
type Delivery struct {
	Region         string `json:"region"`
	NotificationID string `json:"notification_id"`
	// State is "claimed" or "delivered".
	State string `json:"state"`
	// Marker is the delivered marker as the gateway wrote it.
	Marker    json.RawMessage `json:"marker,omitempty"`
	ExpiresAt *time.Time      `json:"expires_at,omitempty"`
}

// DeviceProgress is, for one push notification, the devices the provider
// accepted it for (device id -> provider message id).
type DeviceProgress struct {
	Region         string            `json:"region"`
	NotificationID string            `json:"notification_id"`
	Devices        map[string]string `json:"devices"`
	ExpiresAt      *time.Time        `json:"expires_at,omitempty"`
}

// EdgeMessage is a notification in a region's edge stream.
type EdgeMessage struct {
	Region       string          `json:"region"`
	Subject      string          `json:"subject"`
	Sequence     uint64          `json:"sequence"`
	PublishedAt  time.Time       `json:"published_at"`
	Notification json.RawMessage `json:"notification"`
}

// Erased counts what Erase removed.
type Erased struct {
	NotifierSent, NotifierHeld, GatewayDelivered, GatewayDevices int
	EdgeMessages                                                 uint64
}

// Export reads everything the other services keep about userID (an id:
// events.ValidID).
func (f *Finder) Export(ctx context.Context, userID string) (Data, error) {
	d := Data{Notifier: NotifierData{Sent: []Sent{}, Held: []Held{}},
		Gateway: GatewayData{Deliveries: []Delivery{}, Devices: []DeviceProgress{}}, Edge: []EdgeMessage{}}
	if f.JS == nil {
		return d, ErrEdgeNotConfigured
	}
	sets, err := f.sentSets(ctx, userID)
	if err != nil {
		return d, err
	}
	for _, set := range sets {
		exp, err := expiresAt(ctx, f.Redis, set.raw)
		if err != nil {
			return d, err
		}
		d.Notifier.Sent = append(d.Notifier.Sent, Sent{Region: set.Region, ExpiresAt: exp,
			NotificationID: events.NotificationID(userID, set.SKU, set.Region, set.Episode, set.Channel)})
	}
	keys, err := f.userKeys(ctx, userID)
	if err != nil {
		return d, err
	}
	for _, k := range keys {
		if err := f.exportKey(ctx, k, &d); err != nil {
			return d, err
		}
	}
	for _, r := range f.Regions {
		held, err := f.held(ctx, r, userID)
		if err != nil {
			return d, err
		}
		d.Notifier.Held = append(d.Notifier.Held, held...)
		msgs, truncated, err := f.edgeMessages(ctx, r, userID)
		if err != nil {
			return d, err
		}
		d.Edge = append(d.Edge, msgs...)
		d.EdgeTruncated = d.EdgeTruncated || truncated
	}
	return d, nil
}

// Erase deletes everything the other services keep about userID. Each
// step deletes what it finds, so a repeat finishes an interrupted erasure
// and otherwise finds nothing.
func (f *Finder) Erase(ctx context.Context, userID string) (Erased, error) {
	var e Erased
	if f.JS == nil {
		return e, ErrEdgeNotConfigured
	}
	sets, err := f.sentSets(ctx, userID)
	if err != nil {
		return e, err
	}
	if len(sets) > 0 {
		// One SREM per set: the sets are in different cluster slots.
		pipe := f.Redis.Pipeline()
		for _, set := range sets {
			pipe.SRem(ctx, set.raw, userID)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return e, fmt.Errorf("remove the user from %d sent sets: %w", len(sets), err)
		}
		e.NotifierSent += len(sets)
	}
	keys, err := f.userKeys(ctx, userID)
	if err != nil {
		return e, err
	}
	if len(keys) > 0 {
		// One DEL per key: the keys of a user's regions are in different
		// cluster slots.
		pipe := f.Redis.Pipeline()
		for _, k := range keys {
			pipe.Del(ctx, k.raw)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return e, fmt.Errorf("delete %d keys of the user: %w", len(keys), err)
		}
		for _, k := range keys {
			switch k.Kind {
			case userdata.KindSent: // legacy per-notification markers
				e.NotifierSent++
			case userdata.KindDelivered:
				e.GatewayDelivered++
			case userdata.KindDevices:
				e.GatewayDevices++
			}
		}
	}
	for _, r := range f.Regions {
		held, err := f.held(ctx, r, userID)
		if err != nil {
			return e, err
		}
		if len(held) > 0 {
			ids := make([]string, len(held))
			members := make([]any, len(held))
			for i, h := range held {
				ids[i], members[i] = h.NotificationID, h.NotificationID
			}
			// Both keys of a region share a slot: one transaction, as the
			// notifier's own release does.
			_, err := f.Redis.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.ZRem(ctx, userdata.NotifierHeldKey(r), members...)
				p.HDel(ctx, userdata.NotifierHeldDataKey(r), ids...)
				return nil
			})
			if err != nil {
				return e, fmt.Errorf("remove %d held notifications in %s: %w", len(ids), r, err)
			}
			e.NotifierHeld += len(held)
		}
		n, err := f.purgeEdge(ctx, r, userID)
		if err != nil {
			return e, err
		}
		e.EdgeMessages += n
	}
	return e, nil
}

type foundKey struct {
	userdata.Key
	raw string
}

// userKeys finds the per-user keys of userID, in a stable order.
func (f *Finder) userKeys(ctx context.Context, userID string) ([]foundKey, error) {
	var (
		mu  sync.Mutex
		out = map[string]userdata.Key{}
	)
	for _, p := range userdata.UserPatterns(userID) {
		err := redisconn.Scan(ctx, f.Redis, p, func(_ context.Context, keys []string) error {
			mu.Lock()
			defer mu.Unlock()
			for _, raw := range keys {
				// The pattern is a glob: keep only keys that parse as the
				// user's own.
				if k, ok := userdata.ParseKey(raw); ok && k.UserID == userID {
					out[raw] = k
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	keys := make([]foundKey, 0, len(out))
	for raw, k := range out {
		keys = append(keys, foundKey{Key: k, raw: raw})
	}
	slices.SortFunc(keys, func(a, b foundKey) int { return strings.Compare(a.raw, b.raw) })
	return keys, nil
}

type sentSet struct {
	userdata.SentSet
	raw string
}

// sentSets finds the notifier's sent sets that hold userID, in a stable
// order: a SCAN of the sets of the user's shard, and a SISMEMBER of each
// (one pipelined round trip per SCAN step).
func (f *Finder) sentSets(ctx context.Context, userID string) ([]sentSet, error) {
	var (
		mu  sync.Mutex
		out = map[string]userdata.SentSet{}
	)
	err := redisconn.Scan(ctx, f.Redis, userdata.UserSentSetPattern(userID), func(ctx context.Context, keys []string) error {
		type check struct {
			raw string
			set userdata.SentSet
			cmd *redis.BoolCmd
		}
		var checks []check
		pipe := f.Redis.Pipeline()
		for _, raw := range keys {
			if set, ok := userdata.ParseSentSetKey(raw); ok {
				checks = append(checks, check{raw, set, pipe.SIsMember(ctx, raw, userID)})
			}
		}
		if len(checks) == 0 {
			return nil
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("look for the user in %d sent sets: %w", len(checks), err)
		}
		mu.Lock()
		defer mu.Unlock()
		for _, c := range checks {
			if c.cmd.Val() {
				out[c.raw] = c.set
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sets := make([]sentSet, 0, len(out))
	for raw, set := range out {
		sets = append(sets, sentSet{SentSet: set, raw: raw})
	}
	slices.SortFunc(sets, func(a, b sentSet) int { return strings.Compare(a.raw, b.raw) })
	return sets, nil
}

func (f *Finder) exportKey(ctx context.Context, k foundKey, d *Data) error {
	exp, err := expiresAt(ctx, f.Redis, k.raw)
	if err != nil {
		return err
	}
	switch k.Kind {
	case userdata.KindSent: // a legacy per-notification marker
		d.Notifier.Sent = append(d.Notifier.Sent, Sent{Region: k.Region, NotificationID: k.NotificationID, ExpiresAt: exp})
	case userdata.KindDelivered:
		v, err := f.Redis.Get(ctx, k.raw).Result()
		if errors.Is(err, redis.Nil) {
			return nil // expired or released since the scan
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", k.raw, err)
		}
		dl := Delivery{Region: k.Region, NotificationID: k.NotificationID, State: "claimed", ExpiresAt: exp}
		if !strings.HasPrefix(v, userdata.GatewayClaimPrefix) {
			dl.State, dl.Marker = "delivered", rawJSON([]byte(v))
		}
		d.Gateway.Deliveries = append(d.Gateway.Deliveries, dl)
	case userdata.KindDevices:
		m, err := f.Redis.HGetAll(ctx, k.raw).Result()
		if err != nil {
			return fmt.Errorf("read %s: %w", k.raw, err)
		}
		if len(m) > 0 {
			d.Gateway.Devices = append(d.Gateway.Devices, DeviceProgress{Region: k.Region, NotificationID: k.NotificationID, Devices: m, ExpiresAt: exp})
		}
	}
	return nil
}

func expiresAt(ctx context.Context, rdb redis.UniversalClient, key string) (*time.Time, error) {
	ttl, err := rdb.PTTL(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("ttl of %s: %w", key, err)
	}
	if ttl <= 0 {
		return nil, nil
	}
	t := time.Now().Add(ttl).UTC().Truncate(time.Millisecond)
	return &t, nil
}

// rawJSON keeps a stored value that is JSON as it is, and makes any other
// a JSON string, so the export stays valid JSON whatever a store holds.
func rawJSON(v []byte) json.RawMessage {
	if json.Valid(v) {
		return append(json.RawMessage(nil), v...)
	}
	s, _ := json.Marshal(string(v))
	return s
}

// heldScan is the HSCAN COUNT hint over a region's held payloads.
const heldScan = 1000

// held finds the user's notifications in region's held set: the set is
// per region, so each payload's user_id is read.
func (f *Finder) held(ctx context.Context, region, userID string) ([]Held, error) {
	dataKey := userdata.NotifierHeldDataKey(region)
	needle := []byte(userID)
	var (
		out    []Held
		cursor uint64
	)
	for {
		kv, next, err := f.Redis.HScan(ctx, dataKey, cursor, "", heldScan).Result()
		if err != nil {
			return nil, fmt.Errorf("scan held notifications in %s: %w", region, err)
		}
		for i := 0; i+1 < len(kv); i += 2 {
			id, payload := kv[i], []byte(kv[i+1])
			if !bytes.Contains(payload, needle) {
				continue // cheap: most payloads are other users'
			}
			var n struct {
				UserID string `json:"user_id"`
			}
			if json.Unmarshal(payload, &n) != nil || n.UserID != userID {
				continue
			}
			if slices.ContainsFunc(out, func(h Held) bool { return h.NotificationID == id }) {
				continue // HSCAN may return a field twice
			}
			out = append(out, Held{Region: region, NotificationID: id, Notification: rawJSON(payload)})
		}
		if next == 0 {
			break
		}
		cursor = next
	}
	if len(out) == 0 {
		return nil, nil
	}
	pipe := f.Redis.Pipeline()
	scores := make([]*redis.FloatCmd, len(out))
	for i, h := range out {
		scores[i] = pipe.ZScore(ctx, userdata.NotifierHeldKey(region), h.NotificationID)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read release times in %s: %w", region, err)
	}
	for i := range out {
		out[i].ReleaseAt = time.UnixMilli(int64(scores[i].Val())).UTC()
	}
	return out, nil
}

// streams are region's edge streams (one per channel) that this NATS has:
// none for a region whose notifier never ran, or another region's NATS.
func (f *Finder) streams(ctx context.Context, region string) ([]jetstream.Stream, error) {
	var out []jetstream.Stream
	for _, name := range edge.Streams(region) {
		st, err := f.JS.Stream(ctx, name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("edge stream %s of %s: %w", name, region, err)
		}
		out = append(out, st)
	}
	return out, nil
}

// edgeFetch is the messages one fetch of the export asks for.
const edgeFetch = 256

// edgeMessages are the user's messages on region's edge, at most
// MaxEdgeMessages of them over all its streams, and whether there were more.
func (f *Finder) edgeMessages(ctx context.Context, region, userID string) ([]EdgeMessage, bool, error) {
	streams, err := f.streams(ctx, region)
	if err != nil {
		return nil, false, err
	}
	var out []EdgeMessage
	more := false
	for _, st := range streams {
		var m bool
		if out, m, err = f.streamMessages(ctx, st, region, userID, out); err != nil {
			return nil, false, err
		}
		more = more || m
	}
	return out, more, nil
}

// streamMessages appends the user's messages in one stream to out, up to
// MaxEdgeMessages in all.
func (f *Finder) streamMessages(ctx context.Context, st jetstream.Stream, region, userID string, out []EdgeMessage) ([]EdgeMessage, bool, error) {
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{edge.UserFilter(userID)}})
	if err != nil {
		return nil, false, fmt.Errorf("read the edge of %s: %w", region, err)
	}
	pending := cons.CachedInfo().NumPending
	want := min(pending, MaxEdgeMessages-uint64(len(out)))
	for got := uint64(0); got < want; {
		batch, err := cons.Fetch(int(min(want-got, edgeFetch)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, false, fmt.Errorf("read the edge of %s: %w", region, err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			md, err := m.Metadata()
			if err != nil {
				return nil, false, fmt.Errorf("read the edge of %s: %w", region, err)
			}
			out = append(out, EdgeMessage{Region: region, Subject: m.Subject(), Sequence: md.Sequence.Stream,
				PublishedAt: md.Timestamp.UTC(), Notification: rawJSON(m.Data())})
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, false, fmt.Errorf("read the edge of %s: %w", region, err)
		}
		if n == 0 {
			break // purged or aged out since the count
		}
		got += uint64(n)
	}
	return out, pending > want, nil
}

// purgeEdge removes the user's messages from region's edge streams and
// returns how many there were.
func (f *Finder) purgeEdge(ctx context.Context, region, userID string) (uint64, error) {
	streams, err := f.streams(ctx, region)
	if err != nil {
		return 0, err
	}
	filter := edge.UserFilter(userID)
	var n uint64
	for _, st := range streams {
		info, err := st.Info(ctx, jetstream.WithSubjectFilter(filter))
		if err != nil {
			return n, fmt.Errorf("count the user's messages on the edge of %s: %w", region, err)
		}
		var in uint64
		for _, c := range info.State.Subjects {
			in += c
		}
		if in == 0 {
			continue
		}
		if err := st.Purge(ctx, jetstream.WithPurgeSubject(filter)); err != nil {
			return n, fmt.Errorf("purge the user's messages from the edge of %s: %w", region, err)
		}
		n += in
	}
	return n, nil
}
