// Package optoutcheck reads users' opt-out records (the topics/optout
// contract) for the notifier, right before it publishes to the edge, and
// the gateway, right before it calls a provider. A batch's users cost one
// pipelined round trip, never one per record: on a single Redis node one
// MGET per 1,000 distinct users; on a cluster or ring one GET per user,
// because the keys of different users are in different slots, which MGET
// cannot span. The MGET is for Redis's CPU: a command costs more than the
// key it reads, so a million GETs cost redis-server 0.68 CPU-s and a
// thousand MGETs of the same keys 0.17 (Redis 7.0, the 2-core machine of
// docs/benchmarks.md), a sixth of what a whole notification costs it.
package optoutcheck

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"

	"backinstock/topics/optout"
)

// Reader reads opt-out records from the wishlist's Redis.
type Reader struct {
	rdb redis.UniversalClient
}

// New reads through rdb, which must reach the Redis the wishlist writes
// (every deployment gives the services one REDIS_URL).
func New(rdb redis.UniversalClient) *Reader { return &Reader{rdb: rdb} }

// States returns the opt-out state of each user that has a record (users
// without one are absent: they opted out of nothing). A malformed record
// reads as optout.State{Unreadable: true}, which suppresses: an error here
// would stall the partition on a record no retry can fix.
func (r *Reader) States(ctx context.Context, users []string) (map[string]optout.State, error) {
	out := map[string]optout.State{}
	if len(users) == 0 {
		return out, nil
	}
	distinct := make([]string, 0, len(users))
	seen := make(map[string]bool, len(users))
	for _, u := range users {
		if !seen[u] {
			seen[u] = true
			distinct = append(distinct, u)
		}
	}
	vals, err := r.read(ctx, distinct)
	if err != nil {
		return nil, fmt.Errorf("read opt-outs of %d users: %w", len(distinct), err)
	}
	for i, v := range vals {
		if v == nil {
			continue
		}
		s, err := optout.Parse(*v)
		if err != nil {
			s = optout.State{Unreadable: true}
		}
		out[distinct[i]] = s
	}
	return out, nil
}

// mgetChunk bounds one MGET so a huge batch does not make one huge reply;
// the chunks share one pipelined round trip.
const mgetChunk = 1000

// read returns each user's record, nil where there is none.
func (r *Reader) read(ctx context.Context, users []string) ([]*string, error) {
	if c, single := r.rdb.(*redis.Client); single {
		return readMGet(ctx, c, users)
	}
	return readGet(ctx, r.rdb, users)
}

// readMGet is read on a single node: one MGET per mgetChunk users.
func readMGet(ctx context.Context, rdb *redis.Client, users []string) ([]*string, error) {
	var cmds []*redis.SliceCmd
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for start := 0; start < len(users); start += mgetChunk {
			chunk := users[start:min(start+mgetChunk, len(users))]
			keys := make([]string, len(chunk))
			for i, u := range chunk {
				keys[i] = optout.Key(u)
			}
			cmds = append(cmds, p.MGet(ctx, keys...))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]*string, 0, len(users))
	for _, c := range cmds {
		for _, v := range c.Val() {
			var rec *string
			if s, ok := v.(string); ok {
				rec = &s
			}
			out = append(out, rec)
		}
	}
	if len(out) != len(users) {
		return nil, fmt.Errorf("%d answers to %d users", len(out), len(users))
	}
	return out, nil
}

// readGet is read on a cluster or ring: one GET per user, pipelined.
func readGet(ctx context.Context, rdb redis.UniversalClient, users []string) ([]*string, error) {
	cmds := make([]*redis.StringCmd, len(users))
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.Get(ctx, optout.Key(u))
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	out := make([]*string, 0, len(users))
	for _, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			out = append(out, nil)
		case err != nil:
			return nil, err
		default:
			out = append(out, &v)
		}
	}
	return out, nil
}

// State returns one user's opt-out state (the zero State without a record).
func (r *Reader) State(ctx context.Context, userID string) (optout.State, error) {
	m, err := r.States(ctx, []string{userID})
	if err != nil {
		return optout.State{}, err
	}
	return m[userID], nil
}
