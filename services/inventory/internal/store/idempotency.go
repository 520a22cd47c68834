package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// BeginState is what an idempotent request learns when it starts.
type BeginState int

// The answers of Begin.
const (
	// Proceed: this attempt holds the key; apply, then Finish (or Abandon).
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

// Claim is what Begin found: the state, the stored answer when Done, and
// (when Proceed) the attempt that holds the key, for Abandon.
type Claim struct {
	State  BeginState
	Stored Stored
	token  string
}

// Begin claims an idempotency key for a request whose method, path and body
// hash to hash, until the attempt's deadline: the claim lasts exactly as
// long as the attempt can act, so a retry after the attempt gave up (it
// answered 503, or its process died) takes the key over at once, never
// waiting behind a dead claim. What the attempt sent before giving up may
// still run later (a stalled Redis runs what it buffered when it resumes);
// the per-chunk records Apply writes make that safe: each chunk applies at
// most once, whichever attempt's script reaches Redis first.
func (s *Store) Begin(ctx context.Context, now, deadline time.Time, key, hash string) (Claim, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	args := []any{hash, now.UnixMilli(), deadline.UnixMilli(), s.o.IdempotencyTTL.Milliseconds(), tok}
	res, err := s.begin.Run(ctx, s.rdb, []string{idemKey(key)}, args...).Slice()
	if err != nil {
		return Claim{}, fmt.Errorf("claim idempotency key: %w", err)
	}
	switch res[0] {
	case "go":
		return Claim{State: Proceed, token: tok}, nil
	case "busy":
		return Claim{State: Busy}, nil
	case "mismatch":
		return Claim{State: Mismatch}, nil
	case "done":
		code, _ := strconv.Atoi(fmt.Sprint(res[1]))
		body, _ := res[2].(string)
		return Claim{State: Done, Stored: Stored{Status: code, Body: []byte(body)}}, nil
	}
	return Claim{}, fmt.Errorf("claim idempotency key: unexpected answer %v", res)
}

// Finish stores the answer of a completed request for IdempotencyTTL.
// Unconditional: any attempt that completes a request answers the same
// (the chunk records fix the results), so a late Finish stores what a
// retry's would.
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

// Abandon releases the key an attempt claimed after the attempt failed, so a
// retry need not wait for the claim to end. It removes nothing but that
// attempt's own claim (see abandon.lua).
func (s *Store) Abandon(ctx context.Context, key string, c Claim) error {
	if c.State != Proceed {
		return nil
	}
	if err := s.abandon.Run(ctx, s.rdb, []string{idemKey(key)}, c.token).Err(); err != nil {
		return fmt.Errorf("release idempotency key: %w", err)
	}
	return nil
}
