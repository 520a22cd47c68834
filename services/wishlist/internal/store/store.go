// Package store keeps the wishlist in Redis. Keys are hash-tagged for Redis
// Cluster:
//
//	wl:{<sku>|<region>}:users   ZSET user id -> wishlist time (ms); ties
//	                            ordered by user id, so the order is total
//	wl:{<sku>|<region>}:items   HASH user id -> entry and the user's
//	                            preferences ("<ms> <region> <channels>\n<prefs JSON>")
//	wl:{<user>}:user            HASH "p" -> preferences JSON,
//	                            "i:<sku>" -> entry ("<ms> <region> <channels>")
//	wl:ckpt:{<event>|<region>}  STRING fan-out checkpoint JSON (with a TTL);
//	                            a replay's: wl:ckpt:{<event>@<scope>|<region>}
//	optout:{<user>}             STRING the user's opt-out record (topics/optout):
//	                            written in the same MULTI as the preferences,
//	                            read by the notifier and the gateway
//
// The user hash is the source of truth for the API. The items hash is the
// fan-out's copy: it shares the sorted set's hash slot, so one script call
// per page returns the next wishlisters with their channels and preferences
// (no per-user round trip, which cost Redis and the worker more than the rest
// of a fan-out). Preferences are copied into it when an entry is written and
// re-copied to every entry of the user when they change.
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

	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/backoff"
	"backinstock/topics/optout"
)

const (
	// PrefsField is the user hash's field of the preferences JSON.
	PrefsField = "p"
	itemPrefix = "i:"
)

// UsersKey is the sorted set of a (sku, region)'s wishlisters.
func UsersKey(sku, region string) string { return "wl:{" + sku + "|" + region + "}:users" }

// ItemsKey is the fan-out's hash of a (sku, region)'s entries with preferences.
func ItemsKey(sku, region string) string { return "wl:{" + sku + "|" + region + "}:items" }

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
	plan *redis.Script
}

// New wraps a connected client.
func New(rdb redis.UniversalClient) *Store {
	return &Store{rdb: rdb, page: redis.NewScript(pageScript), plan: redis.NewScript(planScript)}
}

// Client is the underlying client (readiness checks).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Lookup returns the stored entries for the given (user, sku) pairs, nil
// where there is none, with one pipelined round trip.
func (s *Store) Lookup(ctx context.Context, keys []wishes.Entry) ([]*wishes.Entry, error) {
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
	out := make([]*wishes.Entry, len(keys))
	for i, c := range cmds {
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("look up entry %s|%s: %w", keys[i].UserID, keys[i].SKU, err)
		}
		e, err := wishes.DecodeItem(keys[i].UserID, keys[i].SKU, v)
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
func (s *Store) Write(ctx context.Context, puts []wishes.Entry, removes []wishes.Entry, old []*wishes.Entry) error {
	if len(puts)+len(removes) == 0 {
		return nil
	}
	prefs, err := s.rawPrefs(ctx, puts)
	if err != nil {
		return err
	}
	pipe := s.rdb.Pipeline()
	for i, e := range puts {
		item := wishes.EncodeItem(e)
		pipe.HSet(ctx, UserKey(e.UserID), itemPrefix+e.SKU, item)
		pipe.HSet(ctx, ItemsKey(e.SKU, e.Region), e.UserID, withPrefs(item, prefs[i]))
		pipe.ZAdd(ctx, UsersKey(e.SKU, e.Region), redis.Z{Score: float64(e.Since.UnixMilli()), Member: e.UserID})
		if o := old[i]; o != nil && o.Region != e.Region {
			pipe.ZRem(ctx, UsersKey(o.SKU, o.Region), o.UserID)
			pipe.HDel(ctx, ItemsKey(o.SKU, o.Region), o.UserID)
		}
	}
	for i, r := range removes {
		pipe.HDel(ctx, UserKey(r.UserID), itemPrefix+r.SKU)
		if o := old[len(puts)+i]; o != nil {
			pipe.ZRem(ctx, UsersKey(o.SKU, o.Region), o.UserID)
			pipe.HDel(ctx, ItemsKey(o.SKU, o.Region), o.UserID)
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write %d entries, remove %d: %w", len(puts), len(removes), err)
	}
	// Preferences changed by a concurrent SetPrefs after they were read
	// above may have missed these entries (SetPrefs copies them to the
	// entries it finds); read them again and re-copy where they differ.
	for range 3 {
		again, err := s.rawPrefs(ctx, puts)
		if err != nil {
			return err
		}
		pipe := s.rdb.Pipeline()
		for i, e := range puts {
			if again[i] != prefs[i] {
				pipe.HSet(ctx, ItemsKey(e.SKU, e.Region), e.UserID, withPrefs(wishes.EncodeItem(e), again[i]))
			}
		}
		if pipe.Len() == 0 {
			return nil
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("re-copy preferences to %d entries: %w", pipe.Len(), err)
		}
		prefs = again
	}
	return nil
}

func withPrefs(item, prefs string) string {
	if prefs == "" {
		return item
	}
	return item + "\n" + prefs
}

// rawPrefs reads the stored preferences JSON of each entry's user ("" for none).
func (s *Store) rawPrefs(ctx context.Context, entries []wishes.Entry) ([]string, error) {
	out := make([]string, len(entries))
	if len(entries) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(entries))
	for i, e := range entries {
		cmds[i] = pipe.HGet(ctx, UserKey(e.UserID), PrefsField)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("read preferences of %d users: %w", len(entries), err)
	}
	for i, c := range cmds {
		out[i] = c.Val()
	}
	return out, nil
}

// Entries lists a user's wishlist (sorted by sku) and preferences.
func (s *Store) Entries(ctx context.Context, userID string) ([]wishes.Entry, *wishes.Preferences, error) {
	all, err := s.rdb.HGetAll(ctx, UserKey(userID)).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read wishlist of %s: %w", userID, err)
	}
	var (
		out   []wishes.Entry
		prefs *wishes.Preferences
	)
	for field, v := range all {
		if field == PrefsField {
			if prefs, err = decodePrefs(userID, v); err != nil {
				return nil, nil, err
			}
			continue
		}
		sku, ok := strings.CutPrefix(field, itemPrefix)
		if !ok {
			continue
		}
		e, err := wishes.DecodeItem(userID, sku, v)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, e)
	}
	sortEntries(out)
	return out, prefs, nil
}

func sortEntries(es []wishes.Entry) {
	slices.SortFunc(es, func(a, b wishes.Entry) int { return strings.Compare(a.SKU, b.SKU) })
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
func (s *Store) Prefs(ctx context.Context, userID string) (*wishes.Preferences, error) {
	v, err := s.rdb.HGet(ctx, UserKey(userID), PrefsField).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read preferences of %s: %w", userID, err)
	}
	return decodePrefs(userID, v)
}

// SetPrefs replaces a user's preferences (nil deletes them) and copies them
// to the fan-out's record of every entry of the user. The rebuild uses it;
// the API's read-modify-writes use UpdatePrefs.
func (s *Store) SetPrefs(ctx context.Context, userID string, p *wishes.Preferences) error {
	raw := ""
	if p != nil {
		var err error
		if raw, err = encodePrefs(userID, p); err != nil {
			return err
		}
	}
	_, err := s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		if p == nil {
			pipe.HDel(ctx, UserKey(userID), PrefsField)
		} else {
			pipe.HSet(ctx, UserKey(userID), PrefsField, raw)
		}
		writeOptOut(ctx, pipe, userID, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write preferences of %s: %w", userID, err)
	}
	return s.copyPrefs(ctx, userID)
}

// writeOptOut queues the write of the user's opt-out record (topics/optout)
// as p says: in the same MULTI as the preferences, so the record the
// notifier and the gateway read is never behind preferences that were
// answered with a 2xx. The key shares the user hash's slot ({<user>}).
func writeOptOut(ctx context.Context, pipe redis.Pipeliner, userID string, p *wishes.Preferences) {
	st := optout.State{}
	if p != nil {
		st = optout.Of(p.Unsubscribed, p.OptOut)
	}
	if st.None() {
		pipe.Del(ctx, optout.Key(userID))
		return
	}
	pipe.Set(ctx, optout.Key(userID), st.Format(), 0)
}

// ErrContended is returned by UpdatePrefs when other writes to the user
// kept changing the record for every attempt.
var ErrContended = errors.New("the user's record kept changing")

// updateAttempts bounds UpdatePrefs' optimistic retries. A retry needs
// another write to the same user inside the few milliseconds of one
// attempt (the changelog's acknowledgement is inside it); each round lets
// at least one writer through, so ten devices registered at once take at
// most ten rounds, and the jittered waits between attempts spread them.
// More than this means a client hammering one user (or the request's
// deadline, REQUEST_TIMEOUT, ends it first).
const updateAttempts = 32

// UpdatePrefs changes a user's preferences atomically: change gets the
// stored ones (nil when none; it may modify them) and returns what to
// store (nil clears) and whether to write at all. The read and the write
// are one optimistic transaction on the user's hash (WATCH): when another
// write to the user lands in between, change runs again on the new state,
// so two devices registered at once are both kept. change may log the
// result (the changelog) before it returns: a retried attempt logs again,
// and the last record of the key is the state finally written. It returns
// the preferences as stored.
func (s *Store) UpdatePrefs(ctx context.Context, userID string, change func(ctx context.Context, cur *wishes.Preferences) (next *wishes.Preferences, write bool, err error)) (*wishes.Preferences, error) {
	key := UserKey(userID)
	var result *wishes.Preferences
	txn := func(tx *redis.Tx) error {
		v, err := tx.HGet(ctx, key, PrefsField).Result()
		var cur *wishes.Preferences
		switch {
		case errors.Is(err, redis.Nil):
		case err != nil:
			return fmt.Errorf("read preferences of %s: %w", userID, err)
		default:
			if cur, err = decodePrefs(userID, v); err != nil {
				return err
			}
		}
		next, write, err := change(ctx, cur)
		if err != nil {
			return err
		}
		if !write {
			// Nothing to change, but the opt-out record is written
			// again from the stored preferences (under the same WATCH):
			// a record missing from before records existed (a second
			// one-click unsubscribe finds the user already unsubscribed)
			// is there before the 2xx.
			result = cur
			_, err := tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				writeOptOut(ctx, p, userID, cur)
				return nil
			})
			if err != nil && !errors.Is(err, redis.TxFailedErr) {
				err = fmt.Errorf("write opt-out record of %s: %w", userID, err)
			}
			return err
		}
		raw := ""
		if next != nil {
			if raw, err = encodePrefs(userID, next); err != nil {
				return err
			}
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			if next == nil {
				p.HDel(ctx, key, PrefsField)
			} else {
				p.HSet(ctx, key, PrefsField, raw)
			}
			writeOptOut(ctx, p, userID, next)
			return nil
		})
		if err != nil && !errors.Is(err, redis.TxFailedErr) {
			err = fmt.Errorf("write preferences of %s: %w", userID, err)
		}
		result = next
		return err
	}
	wait := backoff.New(2*time.Millisecond, 50*time.Millisecond)
	for range updateAttempts {
		err := s.rdb.Watch(ctx, txn, key)
		if errors.Is(err, redis.TxFailedErr) {
			if !wait.Wait(ctx) {
				return nil, fmt.Errorf("update preferences of %s: %w", userID, ctx.Err())
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return result, s.copyPrefs(ctx, userID)
	}
	return nil, fmt.Errorf("update preferences of %s: %w after %d attempts", userID, ErrContended, updateAttempts)
}

// copyPrefs copies the user's stored preferences to the fan-out's record of
// each of the user's entries. Two writers may copy in either order, so each
// reads the preferences again after copying and copies once more when they
// changed: whoever copies last has copied the latest.
func (s *Store) copyPrefs(ctx context.Context, userID string) error {
	all, err := s.rdb.HGetAll(ctx, UserKey(userID)).Result()
	if err != nil {
		return fmt.Errorf("read entries of %s: %w", userID, err)
	}
	raw := all[PrefsField]
	for range 3 {
		pipe := s.rdb.Pipeline()
		for field, v := range all {
			sku, ok := strings.CutPrefix(field, itemPrefix)
			if !ok {
				continue
			}
			e, err := wishes.DecodeItem(userID, sku, v)
			if err != nil {
				return err
			}
			pipe.HSet(ctx, ItemsKey(sku, e.Region), userID, withPrefs(v, raw))
		}
		if pipe.Len() == 0 {
			return nil
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("copy preferences of %s to its entries: %w", userID, err)
		}
		again, err := s.rdb.HGet(ctx, UserKey(userID), PrefsField).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("read preferences of %s: %w", userID, err)
		}
		if again == raw {
			return nil
		}
		raw = again
	}
	return nil
}

func encodePrefs(userID string, p *wishes.Preferences) (string, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return "", fmt.Errorf("encode preferences of %s: %w", userID, err)
	}
	return string(data), nil
}

func decodePrefs(userID, v string) (*wishes.Preferences, error) {
	var p wishes.Preferences
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
	// Next, when above 0, is where the caller expects the page after the
	// cursor to start: Member's rank + 1 when the previous page was read
	// (Page's next cursor has it). Only a hint: Page checks it.
	Next int64
}

// Wishlister is one member of a page with what the fan-out needs of it.
// Entry is nil when the user removed the entry (or moved it to another
// region) after the page was read.
type Wishlister struct {
	UserID string
	Entry  *wishes.Entry
	Prefs  *wishes.Preferences
}

// pageScript returns the rank of the first member after the cursor
// (ARGV[1] score, ARGV[2] member; "" member = from the start) and up to
// ARGV[3] members from there (with scores) of the sorted set KEYS[1],
// atomically. It finds the cursor by rank when the member is still there
// with the same score, and otherwise by a binary search among the members
// of equal score, so a wishlister removed meanwhile does not lose the
// place.
const pageScript = cursorRank + `
return {start, redis.call('ZRANGE', KEYS[1], start, start + tonumber(ARGV[3]) - 1, 'WITHSCORES')}
`

// cursorRank sets start to the rank of the first member after the cursor
// (ARGV[1] score, ARGV[2] member; "" member = from the start).
const cursorRank = `
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
`

// planScript splits the wishlisters after the cursor (at most ARGV[3] of
// them; -1: all) into at most ARGV[4] parts of at least ARGV[5] each, in
// one atomic read. It returns the number of wishlisters n, the number of
// parts p, and each part's last member and score; the last part of an
// unlimited plan has none (it runs to the end of the set).
const planScript = cursorRank + `
local n = redis.call('ZCARD', KEYS[1]) - start
local limit = tonumber(ARGV[3])
if limit >= 0 and limit < n then n = limit end
if n <= 0 then return {0, 0} end
local p = math.floor(n / tonumber(ARGV[5]))
if p > tonumber(ARGV[4]) then p = tonumber(ARGV[4]) end
if p < 1 then p = 1 end
local out = {n, p}
for k = 1, p do
  if k < p or limit >= 0 then
    local r = start + math.floor(n * k / p) - 1
    local m = redis.call('ZRANGE', KEYS[1], r, r, 'WITHSCORES')
    out[#out + 1] = m[1]
    out[#out + 1] = m[2]
  end
end
return out
`

// Plan splits the wishlisters of (sku, region) after cur — at most limit
// of them, limit < 0 for all — into at most parts contiguous segments of at
// least minPer wishlisters each (one when there are fewer than 2·minPer).
// It returns how many wishlisters the plan covers and each segment's last
// one; an unlimited plan's last segment has none (nil): it runs to the end
// of the set. n = 0: nobody is left.
func (s *Store) Plan(ctx context.Context, sku, region string, cur Cursor, limit int64, parts, minPer int) (n int64, ends []*wishes.Bound, err error) {
	raw, err := s.plan.Run(ctx, s.rdb, []string{UsersKey(sku, region)}, strconv.FormatInt(cur.Score, 10), cur.Member, limit, max(parts, 1), max(minPer, 1)).Slice()
	if err != nil {
		return 0, nil, fmt.Errorf("plan segments of %s in %s: %w", sku, region, err)
	}
	bad := fmt.Errorf("plan segments of %s in %s: unexpected reply %v", sku, region, raw)
	if len(raw) < 2 {
		return 0, nil, bad
	}
	n, _ = raw[0].(int64)
	p, _ := raw[1].(int64)
	if n == 0 {
		return 0, nil, nil
	}
	for i := 2; i+1 < len(raw); i += 2 {
		member, _ := raw[i].(string)
		sc, _ := raw[i+1].(string)
		score, err := strconv.ParseFloat(sc, 64)
		if err != nil || member == "" {
			return 0, nil, bad
		}
		ends = append(ends, &wishes.Bound{Score: int64(score), Member: member})
	}
	if limit < 0 {
		ends = append(ends, nil)
	}
	if int64(len(ends)) != p {
		return 0, nil, bad
	}
	return n, ends, nil
}

// Page reads up to n wishlisters of (sku, region) after cur, earliest
// first, with their entries and preferences, and the cursor after the last
// of them (cur when there are none): one transaction of ZRANGEs for the
// ids and one HMGET of the items hash (same slot) for the rest. With an
// end, the page stops after that wishlister (a segment's last).
func (s *Store) Page(ctx context.Context, sku, region string, cur Cursor, end *wishes.Bound, n int) ([]Wishlister, Cursor, error) {
	users, next, err := s.members(ctx, UsersKey(sku, region), cur, end, n)
	if err != nil {
		return nil, cur, fmt.Errorf("page wishlisters of %s in %s: %w", sku, region, err)
	}
	if len(users) == 0 {
		return nil, cur, nil
	}
	items, err := s.rdb.HMGet(ctx, ItemsKey(sku, region), users...).Result()
	if err != nil {
		return nil, cur, fmt.Errorf("read %d wishlisters of %s in %s: %w", len(users), sku, region, err)
	}
	out := make([]Wishlister, len(users))
	// Users with the same preferences share one decoded copy.
	decoded := map[string]*wishes.Preferences{}
	for i, user := range users {
		out[i] = Wishlister{UserID: user}
		v, ok := items[i].(string)
		if !ok {
			continue // removed after the sorted set was read: skipped
		}
		item, prefs, _ := strings.Cut(v, "\n")
		e, err := wishes.DecodeItem(user, sku, item)
		if err != nil {
			return nil, cur, err
		}
		if e.Region == region {
			out[i].Entry = &e
		}
		if prefs != "" {
			p, ok := decoded[prefs]
			if !ok {
				if p, err = decodePrefs(user, prefs); err != nil {
					return nil, cur, err
				}
				decoded[prefs] = p
			}
			out[i].Prefs = p
		}
	}
	return out, next, nil
}

// member is a sorted-set member with its score.
type member struct {
	member string
	score  int64
}

// members reads the ids of up to n members after cur, not after end, and
// the cursor after the last of them.
//
// Where the set is read from the start, or cur.Next is right, one
// transaction reads them by rank (quick). Otherwise, and at a segment's
// end (a page that passes it), pageScript finds the cursor by score and
// member. The script's cost for Redis was in Lua, not in the range: it
// turns every member into a Lua string and back, about as much again as
// the ZRANGE itself (make bench-e2e, INFO commandstats).
func (s *Store) members(ctx context.Context, key string, cur Cursor, end *wishes.Bound, n int) ([]string, Cursor, error) {
	ids, next, ok, err := s.quick(ctx, key, cur, n)
	if err != nil {
		return nil, cur, err
	}
	if ok && (end == nil || len(ids) == 0 || !past(member{next.Member, next.Score}, *end)) {
		return ids, next, nil
	}
	raw, err := s.page.Run(ctx, s.rdb, []string{key}, strconv.FormatInt(cur.Score, 10), cur.Member, n).Slice()
	if err != nil {
		return nil, cur, err
	}
	bad := fmt.Errorf("unexpected reply %v", raw)
	if len(raw) != 2 {
		return nil, cur, bad
	}
	start, ok1 := raw[0].(int64)
	pairs, ok2 := raw[1].([]any)
	if !ok1 || !ok2 || len(pairs)%2 != 0 {
		return nil, cur, bad
	}
	zs := make([]member, len(pairs)/2)
	for i := range zs {
		m, _ := pairs[2*i].(string)
		sc, _ := pairs[2*i+1].(string)
		score, err := strconv.ParseFloat(sc, 64)
		if err != nil {
			return nil, cur, fmt.Errorf("score %q of %s: %w", sc, m, err)
		}
		zs[i] = member{member: m, score: int64(score)}
	}
	if end != nil {
		zs = zs[:upTo(zs, *end)]
	}
	if len(zs) == 0 {
		return nil, cur, nil
	}
	ids = make([]string, len(zs))
	for i, z := range zs {
		ids[i] = z.member
	}
	last := zs[len(zs)-1]
	return ids, Cursor{Score: last.score, Member: last.member, Next: start + int64(len(zs))}, nil
}

// quick reads up to n ids by rank, from the start of the set or from
// cur.Next, in one MULTI: the ids without their scores, and with its score
// only the member before them (the anchor) and the page's last (at
// start+n-1, or the set's last when the set ends sooner). Scores are what
// a ZRANGE costs Redis most: WITHSCORES made it about ten times dearer on
// Redis 7.0, which formats every score as text. The anchor being cur's
// member with cur's score proves nobody before it was added or removed
// since the last page, so the ids are exactly those after cur. ok is false
// when there is no hint or it is stale.
func (s *Store) quick(ctx context.Context, key string, cur Cursor, n int) (ids []string, next Cursor, ok bool, err error) {
	if cur.Member != "" && cur.Next <= 0 {
		return nil, cur, false, nil
	}
	start, stop := cur.Next, cur.Next+int64(n)-1
	if cur.Member == "" {
		start, stop = 0, int64(n)-1
	}
	var anchor, last, tail *redis.ZSliceCmd
	var idCmd *redis.StringSliceCmd
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if cur.Member != "" {
			anchor = p.ZRangeWithScores(ctx, key, start-1, start-1)
		}
		idCmd = p.ZRange(ctx, key, start, stop)
		last = p.ZRangeWithScores(ctx, key, stop, stop)
		tail = p.ZRangeWithScores(ctx, key, -1, -1)
		return nil
	})
	if err != nil {
		return nil, cur, false, err
	}
	if anchor != nil {
		a := anchor.Val()
		if len(a) != 1 || a[0].Member != cur.Member || int64(a[0].Score) != cur.Score {
			return nil, cur, false, nil
		}
	}
	ids = idCmd.Val()
	if len(ids) == 0 {
		return nil, cur, true, nil
	}
	lz := last.Val()
	if len(lz) == 0 {
		lz = tail.Val()
	}
	if len(lz) != 1 || lz[0].Member != ids[len(ids)-1] {
		return nil, cur, false, fmt.Errorf("page by rank: last member %v is not the page's last %q", lz, ids[len(ids)-1])
	}
	return ids, Cursor{Score: int64(lz[0].Score), Member: ids[len(ids)-1], Next: start + int64(len(ids))}, true, nil
}

// past reports whether z sorts after end. Members of equal score sort
// bytewise, in Redis as in Go's string comparison.
func past(z member, end wishes.Bound) bool {
	return z.score > end.Score || (z.score == end.Score && z.member > end.Member)
}

// upTo is the length of the prefix of zs (in set order) that is not after
// end.
func upTo(zs []member, end wishes.Bound) int {
	for i, z := range zs {
		if past(z, end) {
			return i
		}
	}
	return len(zs)
}

// Checkpoint reads the progress of a fan-out (zero when it has not begun).
func (s *Store) Checkpoint(ctx context.Context, eventID, region string) (wishes.Checkpoint, error) {
	v, err := s.rdb.Get(ctx, CheckpointKey(eventID, region)).Bytes()
	return decodeCheckpoint(v, err, eventID, region)
}

func decodeCheckpoint(v []byte, err error, eventID, region string) (wishes.Checkpoint, error) {
	var ck wishes.Checkpoint
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
func (s *Store) SaveCheckpoint(ctx context.Context, eventID, region string, ck wishes.Checkpoint, ttl time.Duration) error {
	data, err := json.Marshal(ck)
	if err != nil {
		return fmt.Errorf("encode checkpoint %s/%s: %w", eventID, region, err)
	}
	if err := s.rdb.Set(ctx, CheckpointKey(eventID, region), data, ttl).Err(); err != nil {
		return fmt.Errorf("write checkpoint %s/%s: %w", eventID, region, err)
	}
	return nil
}
