// Package ordermark makes POST /v1/orders idempotent by order id: one
// Redis string per order id holds the state and the hash of the body
// accepted under it, hash-tagged by the order id:
//
//	engagement:order:{<order_id>}  "p:<sha256>" while the record is being written,
//	                               "d:<sha256>" once orders.v1 acknowledged it
//
// The same body again finds the same hash and gets the same answer (after
// the record is acknowledged: without writing again); another body under
// the same id is a conflict. What makes the attribution count an order
// once is not this marker but the consumer's per-line markers: a record
// written twice (a crash between the write and the "d:" mark, or a retry
// after the marker expired) is still counted once.
package ordermark

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Durations of the marker.
const (
	// TTL is how long an accepted order id is remembered: a week covers the
	// retry schedules of the shops' order webhooks (Shopify retries for 48
	// hours, Stripe and WooCommerce for 3 days) with room to spare, at some
	// 100 bytes per order. A re-post of the same order after it is written
	// again; the attribution still counts it once. A changed body after it
	// is no longer a 409.
	TTL = 7 * 24 * time.Hour
	// PendingTTL bounds the "p:" state: a process that dies between
	// claiming an order id and writing the record leaves a claim that
	// expires in a minute, after which a corrected body may be posted.
	PendingTTL = time.Minute
)

// State is what a Claim found.
type State int

const (
	// Fresh: the order id was free and is claimed for this body: write it.
	Fresh State = iota
	// Pending: the same body is being written (or its writer died): write
	// it again, which the attribution absorbs.
	Pending
	// Done: the same body was written and acknowledged: answer as before.
	Done
	// Conflict: another body was accepted under this order id.
	Conflict
)

// Marks reads and writes the markers.
type Marks struct {
	rdb redis.UniversalClient
}

// New uses rdb (shared/redisconn: each command sent once).
func New(rdb redis.UniversalClient) *Marks { return &Marks{rdb: rdb} }

func key(orderID string) string { return "engagement:order:{" + orderID + "}" }

// Hash is the hash a body is compared by: hex SHA-256 of its canonical
// encoding.
func Hash(canonical []byte) string {
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:])
}

// claimScript: ARGV[1] the body's hash, ARGV[2] the pending TTL in ms.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], 'p:' .. ARGV[1], 'PX', ARGV[2])
  return 'new'
end
if string.sub(v, 3) ~= ARGV[1] then return 'conflict' end
if string.sub(v, 1, 1) == 'd' then return 'done' end
return 'pending'
`)

// doneScript: ARGV[1] the hash, ARGV[2] the TTL in ms. Only the claim of
// the same body turns done (a claim that expired and was taken by another
// body stays theirs).
var doneScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and string.sub(v, 3) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], 'd:' .. ARGV[1], 'PX', ARGV[2])
return 1
`)

// releaseScript: ARGV[1] the hash. Drops a pending claim of that body.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`)

// Claim claims orderID for the body whose hash is hash, or tells what
// holds it.
func (m *Marks) Claim(ctx context.Context, orderID, hash string) (State, error) {
	s, err := claimScript.Run(ctx, m.rdb, []string{key(orderID)}, hash, PendingTTL.Milliseconds()).Text()
	if err != nil {
		return 0, fmt.Errorf("claim order %s: %w", orderID, err)
	}
	switch s {
	case "new":
		return Fresh, nil
	case "pending":
		return Pending, nil
	case "done":
		return Done, nil
	case "conflict":
		return Conflict, nil
	}
	return 0, fmt.Errorf("claim order %s: script answered %q", orderID, s)
}

// Done records that the body was written and acknowledged, for TTL.
func (m *Marks) Done(ctx context.Context, orderID, hash string) error {
	if err := doneScript.Run(ctx, m.rdb, []string{key(orderID)}, hash, TTL.Milliseconds()).Err(); err != nil {
		return fmt.Errorf("mark order %s written: %w", orderID, err)
	}
	return nil
}

// Release drops the pending claim of a body whose write failed, so the
// shop may post a corrected one at once.
func (m *Marks) Release(ctx context.Context, orderID, hash string) error {
	if err := releaseScript.Run(ctx, m.rdb, []string{key(orderID)}, hash).Err(); err != nil {
		return fmt.Errorf("release order %s: %w", orderID, err)
	}
	return nil
}
