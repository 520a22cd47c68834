// Package store keeps the engagement service's click counters in Redis:
// per notification, how often its tracked link was followed and when
// first. One hash per notification, hash-tagged by its id so a Redis
// Cluster keeps it on one slot:
//
//	engagement:click:{<notification_id>}  total, first_at (Unix ms)
//
// It lives until a day past the link's expiry: after that no click can
// count, so nothing needs to know a click was the first.
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// keepAfterExpiry is how long a notification's counters outlive its link.
const keepAfterExpiry = 24 * time.Hour

// Store reads and writes the counters.
type Store struct {
	rdb redis.UniversalClient
}

// New uses rdb (shared/redisconn: each command sent once, so the script
// below never runs twice for one click).
func New(rdb redis.UniversalClient) *Store { return &Store{rdb: rdb} }

// Clicks are one notification's counters.
type Clicks struct {
	// Total counts every follow of the link.
	Total int64
	// First is true for the click Click just recorded when it was the
	// notification's first: the one unique click.
	First bool
	// FirstAt is when the first click was; zero without clicks.
	FirstAt time.Time
}

// Unique is 1 once the notification's link was followed, 0 before.
func (c Clicks) Unique() int64 {
	if c.Total > 0 {
		return 1
	}
	return 0
}

func key(notificationID string) string { return "engagement:click:{" + notificationID + "}" }

// clickScript counts one click atomically: the first sets first_at (HSETNX
// tells whether this was it), every one adds to total.
var clickScript = redis.NewScript(`
local first = redis.call('HSETNX', KEYS[1], 'first_at', ARGV[1])
local total = redis.call('HINCRBY', KEYS[1], 'total', 1)
redis.call('PEXPIREAT', KEYS[1], ARGV[2])
local firstAt = redis.call('HGET', KEYS[1], 'first_at')
return {first, total, firstAt}
`)

// Click records one click at at of the notification whose link expires at
// expires.
func (s *Store) Click(ctx context.Context, notificationID string, at, expires time.Time) (Clicks, error) {
	res, err := clickScript.Run(ctx, s.rdb, []string{key(notificationID)},
		at.UnixMilli(), expires.Add(keepAfterExpiry).UnixMilli()).Slice()
	if err != nil {
		return Clicks{}, fmt.Errorf("record click of %s: %w", notificationID, err)
	}
	if len(res) != 3 {
		return Clicks{}, fmt.Errorf("record click of %s: script answered %v", notificationID, res)
	}
	first, _ := res[0].(int64)
	total, _ := res[1].(int64)
	ms, _ := res[2].(string)
	firstAt, err := parseMillis(ms)
	if err != nil {
		return Clicks{}, fmt.Errorf("record click of %s: %w", notificationID, err)
	}
	return Clicks{Total: total, First: first == 1, FirstAt: firstAt}, nil
}

// Get reads a notification's counters; no clicks is the zero Clicks.
func (s *Store) Get(ctx context.Context, notificationID string) (Clicks, error) {
	vals, err := s.rdb.HMGet(ctx, key(notificationID), "total", "first_at").Result()
	if err != nil {
		return Clicks{}, fmt.Errorf("read clicks of %s: %w", notificationID, err)
	}
	var c Clicks
	if v, ok := vals[0].(string); ok {
		if c.Total, err = strconv.ParseInt(v, 10, 64); err != nil {
			return Clicks{}, fmt.Errorf("read clicks of %s: total %q: %w", notificationID, v, err)
		}
	}
	if v, ok := vals[1].(string); ok {
		if c.FirstAt, err = parseMillis(v); err != nil {
			return Clicks{}, fmt.Errorf("read clicks of %s: %w", notificationID, err)
		}
	}
	return c, nil
}

// Ping checks the connection (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

func parseMillis(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, errors.New("first_at missing")
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("first_at %q: %w", s, err)
	}
	return time.UnixMilli(ms).UTC(), nil
}
