// Package optoutcheck reads users' opt-out records (the topics/optout
// contract) for the notifier, right before it publishes to the edge, and
// the gateway, right before it calls a provider. A batch's users cost one
// pipelined round trip: one GET per distinct user, never one round trip per
// record (a pipeline, not MGET, because the keys of different users are in
// different slots of a Redis Cluster).
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
	pipe := r.rdb.Pipeline()
	cmds := make(map[string]*redis.StringCmd, len(users))
	for _, u := range users {
		if _, ok := cmds[u]; !ok {
			cmds[u] = pipe.Get(ctx, optout.Key(u))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read opt-outs of %d users: %w", len(cmds), err)
	}
	for u, c := range cmds {
		v, err := c.Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return nil, fmt.Errorf("read opt-out of %s: %w", u, err)
		}
		s, err := optout.Parse(v)
		if err != nil {
			s = optout.State{Unreadable: true}
		}
		out[u] = s
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
