package edgeguard

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// LockBucket is the JetStream key-value bucket (in the app account) whose
// keys are the revocation leases, one per edge account.
const LockBucket = "EDGE_REVOCATION_LOCKS"

// lockTTL is the lease of one revocation: a holder that died releases it by
// expiry. It outlasts the three requests of a revocation at their timeout
// (5 s each); a revocation takes milliseconds.
const lockTTL = 20 * time.Second

// EnsureLockBucket creates (or keeps) the lease bucket. Why a lease at all:
// a revocation reads the account JWT, adds an entry and pushes it back, and
// the servers keep the last push; two notifiers doing it at once would both
// read the same account and the later push would drop the other's entry
// after it had been confirmed. The lease lives in the NATS cluster whose
// account it protects, so every notifier that can push there sees it.
func EnsureLockBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: LockBucket, Description: "backinstock: one edge revocation at a time per account",
		TTL: lockTTL, History: 1, Storage: jetstream.MemoryStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("revocation lease bucket %s: %w", LockBucket, err)
	}
	return kv, nil
}

// acquire takes the account's lease, waiting (with jitter) while another
// notifier holds it; release gives it back if it is still ours.
func acquire(ctx context.Context, kv jetstream.KeyValue, key string) (release func(), err error) {
	for {
		rev, err := kv.Create(ctx, key, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
		if err == nil {
			return func() {
				// Not the caller's context: a cancelled request still hands
				// the lease back.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = kv.Delete(ctx, key, jetstream.LastRevision(rev))
			}, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("%w: revocation lease: %w", ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: another revocation holds the lease: %w", ErrUnavailable, ctx.Err())
		case <-time.After(10*time.Millisecond + rand.N(40*time.Millisecond)):
		}
	}
}
