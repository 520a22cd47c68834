// Package store keeps the wishlist in Redis. Keys are hash-tagged for Redis
// Cluster:
//
//	wl:{<sku>|<region>}:users   ZSET user id -> wishlist time (ms); ties
//	                            ordered by user id, so the order is total
//	wl:{<user>}:user            HASH "p" -> preferences JSON,
//	                            "i:<sku>" -> entry ("<ms> <region> <channels>")
//	wl:ckpt:{<event>|<region>}  STRING fan-out checkpoint JSON (with a TTL)
//
// A user's entries and preferences share one hash so that a fan-out learns a
// wishlister's channels and preferences with a single HMGET, pipelined per page.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/wishlist/internal/wishlist"
)

const (
	fieldPrefs = "p"
	itemPrefix = "i:"
)

// UsersKey is the sorted set of a (sku, region)'s wishlisters.
func UsersKey(sku, region string) string { return "wl:{" + sku + "|" + region + "}:users" }

// UserKey is the hash of a user's entries and preferences.
func UserKey(userID string) string { return "wl:{" + userID + "}:user" }

// CheckpointKey holds the progress of one (restock, region) fan-out.
func CheckpointKey(eventID, region string) string {
	return "wl:ckpt:{" + eventID + "|" + region + "}"
}

// Store is the wishlist store.
type Store struct {
	rdb  redis.UniversalClient
	page *redis.Script
}

// New wraps a connected client.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, page: redis.NewScript(pageScript)}
}

// Client is the underlying client (readiness checks).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Lookup returns the stored entries for the given (user, sku) pairs, nil
// where there is none, with one pipelined round trip.
func (s *Store) Lookup(ctx context.Context, keys []wishlist.Entry) ([]*wishlist.Entry, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.HGet(ctx, UserKey(k.UserID), itemPrefix+k.SKU)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("look up %d entries: %w", len(keys), err)
	}
	out := make([]*wishlist.Entry, len(keys))
	for i, c := range cmds {
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up entry %s|%s: %w", keys[i].UserID, keys[i].SKU, err)
		}
		e, err := wishlist.DecodeItem(keys[i].UserID, keys[i].SKU, v)
		if err != nil {
			return nil, err
		}
		out[i] = &e
	}
	return out, nil
}

// Write stores entries (puts) and removes the (user, sku) pairs in removes,
// in one pipeline. old holds the stored entry of each put and remove (nil if
// none), in the same order as puts followed by removes, so an entry whose
// region changed leaves its old sorted set.
func (s *Store) Write(ctx context.Context, puts []wishlist.Entry, removes []wishlist.Entry, old []*wishlist.Entry) error {
	if len(puts)+len(removes) == 0 {
		return nil
	}
	pipe := s.rdb.Pipeline()
	for i, e := range puts {
		pipe.HSet(ctx, UserKey(e.UserID), itemPrefix+e.SKU, wishlist.EncodeItem(e))
		pipe.ZAdd(ctx, UsersKey(e.SKU, e.Region), redis.Z{Score: float64(e.Since.UnixMilli()), Member: e.UserID})
		if o := old[i]; o != nil && o.Region != e.Region {
			pipe.ZRem(ctx, UsersKey(o.SKU, o.Region), o.UserID)
		}
	}
	for i, r := range removes {
		pipe.HDel(ctx, UserKey(r.UserID), itemPrefix+r.SKU)
		if o := old[len(puts)+i]; o != nil {
			pipe.ZRem(ctx, UsersKey(o.SKU, o.Region), o.UserID)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write %d entries, remove %d: %w", len(puts), len(removes), err)
	}
	return nil
}

// Entries lists a user's wishlist (sorted by sku) and preferences.
func (s *Store) Entries(ctx context.Context, userID string) ([]wishlist.Entry, *wishlist.Preferences, error) {
	all, err := s.rdb.HGetAll(ctx, UserKey(userID)).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read wishlist of %s: %w", userID, err)
	}
	var (
		out   []wishlist.Entry
		prefs *wishlist.Preferences
	)
	for field, v := range all {
		if field == fieldPrefs {
			if prefs, err = decodePrefs(userID, v); err != nil {
				return nil, nil, err
			}
			continue
		}
		sku, ok := strings.CutPrefix(field, itemPrefix)
		if !ok {
			continue
		}
		e, err := wishlist.DecodeItem(userID, sku, v)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, prefs, nil
}

func sortEntries(es []wishlist.Entry) {
	slices.SortFunc(es, func(a, b wishlist.Entry) int { return strings.Compare(a.SKU, b.SKU) })
}

// Count answers how many wishlisters a sku has in each region.
func (s *Store) Count(ctx context.Context, sku string, regions []string) (map[string]int64, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(regions))
	for i, r := range regions {
		cmds[i] = pipe.ZCard(ctx, UsersKey(sku, r))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("count wishlisters of %s: %w", sku, err)
	}
	out := make(map[string]int64, len(regions))
	for i, r := range regions {
		out[r] = cmds[i].Val()
	}
	return out, nil
}

// Prefs reads a user's preferences (nil when none are set).
func (s *Store) Prefs(ctx context.Context, userID string) (*wishlist.Preferences, error) {
	v, err := s.rdb.HGet(ctx, UserKey(userID), fieldPrefs).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read preferences of %s: %w", userID, err)
	}
	return decodePrefs(userID, v)
}

// SetPrefs replaces a user's preferences (nil deletes them).
func (s *Store) SetPrefs(ctx context.Context, userID string, p *wishlist.Preferences) error {
	var err error
	if p == nil {
		err = s.rdb.HDel(ctx, UserKey(userID), fieldPrefs).Err()
	} else {
		data, merr := json.Marshal(p)
		if merr != nil {
			return fmt.Errorf("encode preferences of %s: %w", userID, merr)
		}
		err = s.rdb.HSet(ctx, UserKey(userID), fieldPrefs, data).Err()
	}
	if err != nil {
		return fmt.Errorf("write preferences of %s: %w", userID, err)
	}
	return nil
}

func decodePrefs(userID, v string) (*wishlist.Preferences, error) {
	var p wishlist.Preferences
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return nil, fmt.Errorf("stored preferences of %s: %w", userID, err)
	}
	return &p, nil
}

// Cursor is a position in a (sku, region) sorted set: the last wishlister
// passed. The zero Cursor is the start.
type Cursor struct {
	Score  int64
	Member string
}

// Wishlister is one member of a page with what the fan-out needs of it.
// Entry is nil when the user removed the entry (or moved it to another
// region) after the page was read.
type Wishlister struct {
	UserID string
	Score  int64
	Entry  *wishlist.Entry
	Prefs  *wishlist.Preferences
}

// pageScript returns up to ARGV[3] members (with scores) after the cursor
// (ARGV[1] score, ARGV[2] member; "" member = from the start). It finds the
// cursor by rank when the member is still there with the same score, and
// otherwise by a binary search among the members of equal score, so a
// wishlister removed meanwhile does not lose the place.
const pageScript = `
local n = tonumber(ARGV[3])
local start = 0
if ARGV[2] ~= "" then
  local found = false
  local s = redis.call('ZSCORE', KEYS[1], ARGV[2])
  if s and tonumber(s) == tonumber(ARGV[1]) then
    start = redis.call('ZRANK', KEYS[1], ARGV[2]) + 1
    found = true
  end
  if not found then
    local lo = redis.call('ZCOUNT', KEYS[1], '-inf', '(' .. ARGV[1])
    local hi = redis.call('ZCOUNT', KEYS[1], '-inf', ARGV[1])
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      local m = redis.call('ZRANGE', KEYS[1], mid, mid)[1]
      if m > ARGV[2] then hi = mid else lo = mid + 1 end
    end
    start = lo
  end
end
return redis.call('ZRANGE', KEYS[1], start, start + n - 1, 'WITHSCORES')
`

// Page reads up to n wishlisters of (sku, region) after cur, earliest
// first, with their entries and preferences: one script call for the ids and
// one pipeline of HMGETs for the rest.
func (s *Store) Page(ctx context.Context, sku, region string, cur Cursor, n int) ([]Wishlister, error) {
	raw, err := s.page.Run(ctx, s.rdb, []string{UsersKey(sku, region)}, strconv.FormatInt(cur.Score, 10), cur.Member, n).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("page wishlisters of %s in %s: %w", sku, region, err)
	}
	out := make([]Wishlister, len(raw)/2)
	if len(out) == 0 {
		return nil, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.SliceCmd, len(out))
	field := itemPrefix + sku
	for i := range out {
		score, err := strconv.ParseFloat(raw[2*i+1], 64)
		if err != nil {
			return nil, fmt.Errorf("page wishlisters of %s in %s: score %q: %w", sku, region, raw[2*i+1], err)
		}
		out[i] = Wishlister{UserID: raw[2*i], Score: int64(score)}
		cmds[i] = pipe.HMGet(ctx, UserKey(out[i].UserID), field, fieldPrefs)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("read %d wishlisters of %s in %s: %w", len(out), sku, region, err)
	}
	for i := range out {
		vals := cmds[i].Val()
		if item, ok := vals[0].(string); ok {
			e, err := wishlist.DecodeItem(out[i].UserID, sku, item)
			if err != nil {
				return nil, err
			}
			if e.Region == region {
				out[i].Entry = &e
			}
		}
		if p, ok := vals[1].(string); ok {
			if out[i].Prefs, err = decodePrefs(out[i].UserID, p); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Checkpoint reads the progress of a fan-out (zero when it has not begun).
func (s *Store) Checkpoint(ctx context.Context, eventID, region string) (wishlist.Checkpoint, error) {
	var ck wishlist.Checkpoint
	v, err := s.rdb.Get(ctx, CheckpointKey(eventID, region)).Bytes()
	if errors.Is(err, redis.Nil) {
		return ck, nil
	}
	if err != nil {
		return ck, fmt.Errorf("read checkpoint %s/%s: %w", eventID, region, err)
	}
	if err := json.Unmarshal(v, &ck); err != nil {
		return ck, fmt.Errorf("stored checkpoint %s/%s: %w", eventID, region, err)
	}
	return ck, nil
}

// SaveCheckpoint writes the progress of a fan-out; it expires after ttl,
// which outlives the restock topic's retention so a replay still finds it.
func (s *Store) SaveCheckpoint(ctx context.Context, eventID, region string, ck wishlist.Checkpoint, ttl time.Duration) error {
	data, err := json.Marshal(ck)
	if err != nil {
		return fmt.Errorf("encode checkpoint %s/%s: %w", eventID, region, err)
	}
	if err := s.rdb.Set(ctx, CheckpointKey(eventID, region), data, ttl).Err(); err != nil {
		return fmt.Errorf("write checkpoint %s/%s: %w", eventID, region, err)
	}
	return nil
}
