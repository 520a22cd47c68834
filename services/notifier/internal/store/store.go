// Package store keeps the notifier's Redis state: the "sent" markers
// that make a replay of old records cheap (invariant 2's second layer) and
// the held set of notifications waiting for their recipients' quiet hours
// to end.
//
// Keys (hash-tagged for Redis Cluster; built by backinstock/topics/userdata,
// where the wishlist's export and erasure find them):
//
//	ntf:{<region>|<sku>|<episode>|<shard>}:sent:<channel>  set of user ids, EX = marker TTL (days)
//	ntf:{<region>}:held         sorted set: notification_id scored by release time (unix ms)
//	ntf:{<region>}:held:data    hash: notification_id -> the Notification JSON
//
// A notification is (user, sku, region, episode, channel), so a user id in
// the set of its episode and channel is its marker. Grouping them is what
// makes a big restock cheap for Redis: a batch is a few SADDs and one
// EXPIRE per set to write and a few SMISMEMBERs to look up, instead of a key
// and a TTL per notification (SMISMEMBER needs Redis 6.2 or later). The
// sets are spread over userdata.SentShards by user, so one restock's
// markers land on several cluster nodes. The held keys of a region share
// one slot so one script moves a notification in or out of both atomically.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/topics/userdata"
)

// Store wraps one Redis client for one region.
type Store struct {
	rdb       redis.UniversalClient
	region    string
	markerTTL time.Duration
	heldKey   string
	dataKey   string
}

// New builds a store for region; markers live for markerTTL.
func New(rdb redis.UniversalClient, region string, markerTTL time.Duration) *Store {
	return &Store{
		rdb: rdb, region: region, markerTTL: markerTTL,
		heldKey: userdata.NotifierHeldKey(region),
		dataKey: userdata.NotifierHeldDataKey(region),
	}
}

// Ref names one notification for its sent marker.
type Ref struct {
	UserID, SKU string
	Episode     int64
	Channel     string
}

// memberChunk bounds the members of one command, so a huge batch does not
// make one huge command or reply; the chunks share one pipelined round trip.
const memberChunk = 1000

// group is the refs of one sent set, as indexes into the batch.
type group struct {
	key string
	idx []int
}

// groups splits refs by sent set, in order of first appearance. A batch is
// mostly one restock, so it is a handful of sets.
func (s *Store) groups(refs []Ref) []group {
	type setID struct {
		sku     string
		episode int64
		channel string
		shard   int
	}
	at := map[setID]int{}
	var out []group
	for i, r := range refs {
		id := setID{r.SKU, r.Episode, r.Channel, userdata.SentShard(r.UserID)}
		g, ok := at[id]
		if !ok {
			g = len(out)
			at[id] = g
			out = append(out, group{key: userdata.NotifierSentSetKey(s.region, id.sku, id.episode, id.channel, id.shard)})
		}
		out[g].idx = append(out[g].idx, i)
	}
	return out
}

// chunks calls f with each part of idx of at most memberChunk.
func chunks(idx []int, f func([]int)) {
	for start := 0; start < len(idx); start += memberChunk {
		f(idx[start:min(start+memberChunk, len(idx))])
	}
}

func members(refs []Ref, idx []int) []any {
	m := make([]any, len(idx))
	for i, j := range idx {
		m[i] = refs[j].UserID
	}
	return m
}

// Sent reports, per ref, whether its sent marker exists: one SMISMEMBER per
// set (and chunk) in one pipelined round trip. Each command names one key,
// so a cluster client splits the pipeline by slot.
func (s *Store) Sent(ctx context.Context, refs []Ref) ([]bool, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	type lookup struct {
		idx []int
		cmd *redis.BoolSliceCmd
	}
	var ls []lookup
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, g := range s.groups(refs) {
			chunks(g.idx, func(idx []int) {
				ls = append(ls, lookup{idx, p.SMIsMember(ctx, g.key, members(refs, idx)...)})
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check %d sent markers: %w", len(refs), err)
	}
	out := make([]bool, len(refs))
	for _, l := range ls {
		vals := l.cmd.Val()
		if len(vals) != len(l.idx) {
			return nil, fmt.Errorf("check %d sent markers: %d answers to %d", len(refs), len(vals), len(l.idx))
		}
		for i, j := range l.idx {
			out[j] = vals[i]
		}
	}
	return out, nil
}

// MarkSent writes the markers: SADD per set (and chunk) and one EXPIRE per
// set, in one round trip. It runs only after the edge acknowledged every one
// of them. The EXPIRE renews the set's TTL, so every marker in it lives at
// least the marker TTL. A transaction (MULTI/EXEC, per slot on a cluster)
// keeps a set's SADD and its EXPIRE together: a connection lost between
// them would leave members without a TTL that the retry, finding them
// marked, would never write again.
func (s *Store) MarkSent(ctx context.Context, refs []Ref) error {
	if len(refs) == 0 {
		return nil
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, g := range s.groups(refs) {
			chunks(g.idx, func(idx []int) { p.SAdd(ctx, g.key, members(refs, idx)...) })
			p.Expire(ctx, g.key, s.markerTTL)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %d sent: %w", len(refs), err)
	}
	return nil
}

// Held is a notification waiting for its quiet hours to end.
type Held struct {
	ID      string
	Release time.Time
	Payload []byte
}

// holdScript adds a notification to the held set unless it is there already
// (a replay must not push an earlier release back) and stores its payload.
var holdScript = redis.NewScript(`
for i = 1, #ARGV, 3 do
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[i+1], ARGV[i]) == 1 then
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i+2])
  end
end
return 1`)

// Hold stores notifications for later release. It returns once Redis has
// them, before the records' offsets are committed.
func (s *Store) Hold(ctx context.Context, hs []Held) error {
	if len(hs) == 0 {
		return nil
	}
	args := make([]any, 0, 3*len(hs))
	for _, h := range hs {
		args = append(args, h.ID, strconv.FormatInt(h.Release.UnixMilli(), 10), h.Payload)
	}
	if err := holdScript.Run(ctx, s.rdb, []string{s.heldKey, s.dataKey}, args...).Err(); err != nil {
		return fmt.Errorf("hold %d notifications: %w", len(hs), err)
	}
	return nil
}

// Due returns up to limit held notifications whose release time has passed.
func (s *Store) Due(ctx context.Context, now time.Time, limit int) ([]Held, error) {
	zs, err := s.rdb.ZRangeByScoreWithScores(ctx, s.heldKey, &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatInt(now.UnixMilli(), 10), Count: int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("read due notifications: %w", err)
	}
	if len(zs) == 0 {
		return nil, nil
	}
	ids := make([]string, len(zs))
	for i, z := range zs {
		ids[i] = z.Member.(string)
	}
	vals, err := s.rdb.HMGet(ctx, s.dataKey, ids...).Result()
	if err != nil {
		return nil, fmt.Errorf("read held payloads: %w", err)
	}
	out := make([]Held, 0, len(zs))
	for i, z := range zs {
		h := Held{ID: ids[i], Release: time.UnixMilli(int64(z.Score))}
		if v, ok := vals[i].(string); ok {
			h.Payload = []byte(v)
		}
		out = append(out, h)
	}
	return out, nil
}

// Release removes notifications from the held set once they are sent.
func (s *Store) Release(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	members := make([]any, len(ids))
	for i, id := range ids {
		members[i] = id
	}
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZRem(ctx, s.heldKey, members...)
		p.HDel(ctx, s.dataKey, ids...)
		return nil
	})
	if err != nil {
		return fmt.Errorf("release %d held notifications: %w", len(ids), err)
	}
	return nil
}

// HeldCount is the number of notifications waiting.
func (s *Store) HeldCount(ctx context.Context) (int64, error) {
	n, err := s.rdb.ZCard(ctx, s.heldKey).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, fmt.Errorf("count held: %w", err)
	}
	return n, nil
}
