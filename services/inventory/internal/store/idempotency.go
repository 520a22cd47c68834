package store

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// BeginState is what an idempotent request learns when it starts.
type BeginState int

// The answers of Begin.
const (
	// Proceed: this attempt holds the key; apply, then Finish.
	Proceed BeginState = iota
	// Busy: another attempt with the same key and body is in flight (409).
	Busy
	// Mismatch: the key was used with another request body (422).
	Mismatch
	// Done: the request was completed; answer the stored response.
	Done
)

// Stored is a completed request's answer.
type Stored struct {
	Status int
	Body   []byte
}

// Begin claims an idempotency key for a request whose method, path and body
// hash to hash. The claim is a lease: a retry after the first attempt's
// process died takes the key over once the lease ends, and the per-chunk
// records written by Apply keep the re-run from applying anything twice.
func (s *Store) Begin(ctx context.Context, now time.Time, key, hash string) (BeginState, Stored, error) {
	args := []any{hash, now.UnixMilli(), s.o.Lease.Milliseconds(), s.o.IdempotencyTTL.Milliseconds()}
	res, err := s.begin.Run(ctx, s.rdb, []string{idemKey(key)}, args...).Slice()
	if err != nil {
		return 0, Stored{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	switch res[0] {
	case "go":
		return Proceed, Stored{}, nil
	case "busy":
		return Busy, Stored{}, nil
	case "mismatch":
		return Mismatch, Stored{}, nil
	case "done":
		code, _ := strconv.Atoi(fmt.Sprint(res[1]))
		body, _ := res[2].(string)
		return Done, Stored{Status: code, Body: []byte(body)}, nil
	}
	return 0, Stored{}, fmt.Errorf("claim idempotency key: unexpected answer %v", res)
}

// Finish stores the answer of a completed request for IdempotencyTTL.
func (s *Store) Finish(ctx context.Context, key string, st Stored) error {
	k := idemKey(key)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, k, "s", "d", "c", st.Status, "b", st.Body)
		p.Expire(ctx, k, s.o.IdempotencyTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store idempotent answer: %w", err)
	}
	return nil
}

// Abandon releases a key whose request failed, so a retry need not wait for
// the lease.
func (s *Store) Abandon(ctx context.Context, key string) error {
	if err := s.rdb.Del(ctx, idemKey(key)).Err(); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
