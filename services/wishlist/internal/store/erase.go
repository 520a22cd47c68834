package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/redisconn"
	"backinstock/topics/optout"
)

// RawUser is what the user hash holds, undecoded: the erasure reads it so
// an entry that no longer decodes is erased all the same.
type RawUser struct {
	// SKUs are the skus of the user's entries.
	SKUs []string
	// Prefs is whether the hash holds preferences.
	Prefs bool
	// Exists is whether the hash exists at all.
	Exists bool
}

// ReadRaw reads the user hash's fields.
func (s *Store) ReadRaw(ctx context.Context, userID string) (RawUser, error) {
	fields, err := s.rdb.HKeys(ctx, UserKey(userID)).Result()
	if err != nil {
		return RawUser{}, fmt.Errorf("read entries of %s: %w", userID, err)
	}
	u := RawUser{Exists: len(fields) > 0}
	for _, f := range fields {
		if f == PrefsField {
			u.Prefs = true
		} else if sku, ok := strings.CutPrefix(f, itemPrefix); ok {
			u.SKUs = append(u.SKUs, sku)
		}
	}
	return u, nil
}

// EraseUser deletes the user hash, the opt-out record and the user from the sorted set and
// items hash of each of skus in every one of regions (not only the entry's
// region, so an entry moved by a concurrent write or one that no longer
// decodes leaves nothing behind). Deleting what is not there is harmless,
// so it can be repeated.
func (s *Store) EraseUser(ctx context.Context, userID string, skus, regions []string) error {
	pipe := s.rdb.Pipeline()
	for _, sku := range skus {
		for _, r := range regions {
			pipe.ZRem(ctx, UsersKey(sku, r), userID)
			pipe.HDel(ctx, ItemsKey(sku, r), userID)
		}
	}
	pipe.Del(ctx, UserKey(userID), optout.Key(userID))
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("erase %d entries of %s: %w", len(skus), userID, err)
	}
	return nil
}

// checkpointPattern matches every fan-out checkpoint (CheckpointKey),
// segmentsPattern every round's segments (SegmentsKey).
const (
	checkpointPattern = "wl:ckpt:{*"
	segmentsPattern   = "wl:seg:{*"
)

// ErasedCursor replaces an erased user as a checkpoint's cursor member. It
// sorts before every id ([A-Za-z0-9_-], '-' being the lowest), and the page
// script, not finding it among the members of the cursor's score, resumes
// at the first of them: a resumed fan-out repeats at most the wishlisters
// who share the erased one's wishlist millisecond, which the notifier's
// de-duplication absorbs. As a segment's end (and so the next one's start)
// it moves that boundary before the same wishlisters: each is still in
// exactly one segment.
const ErasedCursor = ","

// ScrubCheckpoints replaces userID wherever a fan-out's progress names it —
// a checkpoint's cursor, a round's end, a segment's cursor or end — keeping
// the rest and the TTLs; it returns how many keys it changed. It scans the
// keyspace (see redisconn.Scan): an erasure's cost, not a request path's.
func (s *Store) ScrubCheckpoints(ctx context.Context, userID string) (int, error) {
	var (
		mu sync.Mutex
		n  int
	)
	scan := func(pattern string, scrub func(context.Context, string, string) (bool, error)) error {
		return redisconn.Scan(ctx, s.rdb, pattern, func(ctx context.Context, keys []string) error {
			// One key at a time: checkpoint keys are in different slots.
			for _, k := range keys {
				changed, err := scrub(ctx, k, userID)
				if err != nil {
					return err
				}
				if changed {
					mu.Lock()
					n++
					mu.Unlock()
				}
			}
			return nil
		})
	}
	if err := scan(checkpointPattern, s.scrubCheckpoint); err != nil {
		return n, err
	}
	err := scan(segmentsPattern, s.scrubSegments)
	return n, err
}

// scrubCheckpoint rewrites one checkpoint if it names userID, in a WATCH
// transaction so a fan-out's concurrent checkpoint is not overwritten with
// an older one (the transaction then fails and the new checkpoint, written
// by a page that no longer holds the erased user, stays).
func (s *Store) scrubCheckpoint(ctx context.Context, key, userID string) (bool, error) {
	changed := false
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		v, err := tx.Get(ctx, key).Bytes()
		if errors.Is(err, redis.Nil) {
			return nil
		}
		if err != nil {
			return err
		}
		out, ok, err := scrubMembers(v, userID)
		if err != nil {
			return fmt.Errorf("stored checkpoint %s: %w", key, err)
		}
		if !ok {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.SetArgs(ctx, key, out, redis.SetArgs{KeepTTL: true})
			return nil
		})
		changed = err == nil
		return err
	}, key)
	if errors.Is(err, redis.TxFailedErr) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("scrub checkpoint %s: %w", key, err)
	}
	return changed, nil
}

// scrubSegments rewrites the segments of a round that name userID, in a
// WATCH transaction like scrubCheckpoint (HSET keeps the hash's TTL).
func (s *Store) scrubSegments(ctx context.Context, key, userID string) (bool, error) {
	changed := false
	err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
		segs, err := tx.HGetAll(ctx, key).Result()
		if err != nil {
			return err
		}
		var fields []any
		for f, v := range segs {
			out, ok, err := scrubMembers([]byte(v), userID)
			if err != nil {
				return fmt.Errorf("stored segment %s of %s: %w", f, key, err)
			}
			if ok {
				fields = append(fields, f, out)
			}
		}
		if len(fields) == 0 {
			return nil
		}
		_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
			p.HSet(ctx, key, fields...)
			return nil
		})
		changed = err == nil
		return err
	}, key)
	if errors.Is(err, redis.TxFailedErr) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("scrub segments %s: %w", key, err)
	}
	return changed, nil
}

// scrubMembers replaces with ErasedCursor every "member" equal to userID in
// a JSON object and the objects nested in it (a cursor, a round's end, a
// segment's end); fields this code does not know stay as they are.
func scrubMembers(v []byte, userID string) ([]byte, bool, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(v, &raw); err != nil {
		return nil, false, err
	}
	changed := false
	for k, fv := range raw {
		var member string
		if k == "member" {
			if json.Unmarshal(fv, &member) == nil && member == userID {
				raw[k], _ = json.Marshal(ErasedCursor)
				changed = true
			}
			continue
		}
		if len(fv) > 0 && fv[0] == '{' {
			out, ok, err := scrubMembers(fv, userID)
			if err != nil {
				return nil, false, err
			}
			if ok {
				raw[k], changed = out, true
			}
		}
	}
	if !changed {
		return v, false, nil
	}
	out, err := json.Marshal(raw)
	return out, true, err
}
