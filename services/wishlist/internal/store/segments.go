package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/lease"
	"backinstock/topics/events"
)

// A round of a fan-out paged in segments (see the wishlist README) keeps:
//   - its segments' progress in the hash SegmentsKey (field = index), with
//     the job (field "job") any worker of the region needs to page them;
//   - a lease per segment being paged (leaseKey), so one worker at a time
//     pages it and a worker that lost its lease cannot move the segment's
//     checkpoint (SaveSegment is fenced by it);
//   - its id in the region's sorted set of open rounds (RoundsKey), where
//     the region's other fan-out processes find work.

// jobField is the segments hash's field holding the RoundJob.
const jobField = "job"

// ErrLeaseLost is SaveSegment's answer to a worker whose lease on the
// segment is gone (expired and maybe taken by another worker).
var ErrLeaseLost = errors.New("segment lease lost")

// SegmentsKey holds, while a round of a (restock, region) fan-out is paged
// by several segments, each segment's progress (field = its index) and the
// round's job.
func SegmentsKey(eventID, region string) string {
	return "wl:seg:{" + eventID + "|" + region + "}"
}

// RoundsKey is the region's sorted set of open rounds: checkpoint ids,
// scored by when their round was opened (ms).
func RoundsKey(region string) string { return "wl:rounds:{" + region + "}" }

// leaseKey is segment i of round's lease (same slot as its progress).
func leaseKey(eventID, region string, round int64, i int) string {
	return "wl:segl:{" + eventID + "|" + region + "}:" + strconv.FormatInt(round, 10) + "." + strconv.Itoa(i)
}

// RoundJob is what a worker needs to page a round's segments.
type RoundJob struct {
	Round int64               `json:"round"`
	Event events.RestockEvent `json:"event"`
	Trace string              `json:"trace,omitempty"`
}

// SaveRound writes a fan-out's checkpoint together with its segments, in
// one transaction (same slot): segs replace any earlier round's; nil
// removes them (the round folded into the checkpoint). With a job the
// round is opened to the region's workers; without segments it is closed.
func (s *Store) SaveRound(ctx context.Context, eventID, region string, ck wishes.Checkpoint, segs []wishes.Segment, job *RoundJob, ttl time.Duration) error {
	data, err := json.Marshal(ck)
	if err != nil {
		return fmt.Errorf("encode checkpoint %s/%s: %w", eventID, region, err)
	}
	fields := make([]any, 0, 2*len(segs)+2)
	for i, sg := range segs {
		v, err := json.Marshal(sg)
		if err != nil {
			return fmt.Errorf("encode segment %d of %s/%s: %w", i, eventID, region, err)
		}
		fields = append(fields, strconv.Itoa(i), v)
	}
	if job != nil && len(segs) > 0 {
		v, err := json.Marshal(job)
		if err != nil {
			return fmt.Errorf("encode round job of %s/%s: %w", eventID, region, err)
		}
		fields = append(fields, jobField, v)
	}
	key := SegmentsKey(eventID, region)
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, key)
		if len(fields) > 0 {
			p.HSet(ctx, key, fields...)
			p.Expire(ctx, key, ttl)
		}
		p.Set(ctx, CheckpointKey(eventID, region), data, ttl)
		return nil
	})
	if err != nil {
		return fmt.Errorf("write checkpoint and segments %s/%s: %w", eventID, region, err)
	}
	// Another slot, so after the transaction: an open round's hash exists
	// before other workers can find it, and a folded round's is gone
	// before it leaves the set (a worker dropping an id whose hash is
	// gone is then right).
	switch {
	case job != nil && len(segs) > 0:
		err = s.rdb.ZAdd(ctx, RoundsKey(region), redis.Z{Score: float64(time.Now().UnixMilli()), Member: eventID}).Err()
	case len(segs) == 0:
		err = s.rdb.ZRem(ctx, RoundsKey(region), eventID).Err()
	}
	if err != nil {
		return fmt.Errorf("open or close round %s/%s: %w", eventID, region, err)
	}
	return nil
}

// OpenRounds lists the checkpoint ids of the region's open rounds.
func (s *Store) OpenRounds(ctx context.Context, region string) ([]string, error) {
	ids, err := s.rdb.ZRange(ctx, RoundsKey(region), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("open rounds of %s: %w", region, err)
	}
	return ids, nil
}

// DropRound removes a round whose segments are gone from the open ones.
func (s *Store) DropRound(ctx context.Context, eventID, region string) error {
	if err := s.rdb.ZRem(ctx, RoundsKey(region), eventID).Err(); err != nil {
		return fmt.Errorf("drop round %s/%s: %w", eventID, region, err)
	}
	return nil
}

// Round reads an open round's job and segments; a nil job means the round
// is folded (or was written without a job: only its owner pages it).
func (s *Store) Round(ctx context.Context, eventID, region string) (*RoundJob, []wishes.Segment, error) {
	all, err := s.rdb.HGetAll(ctx, SegmentsKey(eventID, region)).Result()
	if err != nil {
		return nil, nil, fmt.Errorf("read round %s/%s: %w", eventID, region, err)
	}
	v, ok := all[jobField]
	if !ok {
		return nil, nil, nil
	}
	var job RoundJob
	if err := json.Unmarshal([]byte(v), &job); err != nil {
		return nil, nil, fmt.Errorf("stored round job %s/%s: %w", eventID, region, err)
	}
	segs := make([]wishes.Segment, len(all)-1)
	for i := range segs {
		v, ok := all[strconv.Itoa(i)]
		if err := decodeSegment(&segs[i], v, ok, eventID, region, i); err != nil {
			return nil, nil, err
		}
	}
	return &job, segs, nil
}

// Segments reads the progress of the round in progress, n segments.
func (s *Store) Segments(ctx context.Context, eventID, region string, n int) ([]wishes.Segment, error) {
	fields := make([]string, n)
	for i := range fields {
		fields[i] = strconv.Itoa(i)
	}
	vals, err := s.rdb.HMGet(ctx, SegmentsKey(eventID, region), fields...).Result()
	if err != nil {
		return nil, fmt.Errorf("read segments of %s/%s: %w", eventID, region, err)
	}
	segs := make([]wishes.Segment, n)
	for i, v := range vals {
		str, ok := v.(string)
		if err := decodeSegment(&segs[i], str, ok, eventID, region, i); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// Progress is how far a fan-out has come: its checkpoint, with the users
// and records of a round in progress's segments added. It reads both in one
// transaction, as SaveRound writes them (same slot): read apart, a round
// that ended between the reads would have taken its segments with it.
func (s *Store) Progress(ctx context.Context, eventID, region string) (wishes.Checkpoint, error) {
	var (
		ckCmd  *redis.StringCmd
		segCmd *redis.MapStringStringCmd
	)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		ckCmd = p.Get(ctx, CheckpointKey(eventID, region))
		segCmd = p.HGetAll(ctx, SegmentsKey(eventID, region))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return wishes.Checkpoint{}, fmt.Errorf("read progress of %s/%s: %w", eventID, region, err)
	}
	v, err := ckCmd.Bytes()
	ck, err := decodeCheckpoint(v, err, eventID, region)
	if err != nil || ck.Round == nil {
		return ck, err
	}
	all := segCmd.Val()
	for i := range ck.Round.Segments {
		var sg wishes.Segment
		v, ok := all[strconv.Itoa(i)]
		if err := decodeSegment(&sg, v, ok, eventID, region, i); err != nil {
			return ck, err
		}
		ck.Users += sg.Users
		ck.Records += sg.Records
	}
	return ck, nil
}

// Segment reads the progress of segment i of the round in progress.
func (s *Store) Segment(ctx context.Context, eventID, region string, i int) (wishes.Segment, error) {
	var sg wishes.Segment
	v, err := s.rdb.HGet(ctx, SegmentsKey(eventID, region), strconv.Itoa(i)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return sg, fmt.Errorf("read segment %d of %s/%s: %w", i, eventID, region, err)
	}
	return sg, decodeSegment(&sg, v, err == nil, eventID, region, i)
}

func decodeSegment(sg *wishes.Segment, v string, ok bool, eventID, region string, i int) error {
	if !ok {
		return fmt.Errorf("segment %d of %s/%s is missing", i, eventID, region)
	}
	if err := json.Unmarshal([]byte(v), sg); err != nil {
		return fmt.Errorf("stored segment %d of %s/%s: %w", i, eventID, region, err)
	}
	return nil
}

// SegmentLease is token's lease on segment i of round (same slot as the
// segment's progress, so SaveSegment can be fenced by it).
func (s *Store) SegmentLease(eventID, region string, round int64, i int, token string, ttl time.Duration) lease.Lease {
	return lease.New(s.rdb, leaseKey(eventID, region, round, i), token, ttl)
}

// saveFenced writes a segment's progress only while its lease is the
// writer's (KEYS[1] lease, KEYS[2] segments hash).
var saveFenced = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1`)

// SaveSegment writes the progress of segment i of the round in progress,
// if token still holds its lease (ErrLeaseLost otherwise).
func (s *Store) SaveSegment(ctx context.Context, eventID, region string, round int64, i int, token string, sg wishes.Segment) error {
	v, err := json.Marshal(sg)
	if err != nil {
		return fmt.Errorf("encode segment %d of %s/%s: %w", i, eventID, region, err)
	}
	n, err := saveFenced.Run(ctx, s.rdb, []string{leaseKey(eventID, region, round, i), SegmentsKey(eventID, region)}, token, strconv.Itoa(i), v).Int()
	if err != nil {
		return fmt.Errorf("write segment %d of %s/%s: %w", i, eventID, region, err)
	}
	if n != 1 {
		return fmt.Errorf("write segment %d of %s/%s: %w", i, eventID, region, ErrLeaseLost)
	}
	return nil
}
