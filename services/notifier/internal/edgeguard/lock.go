package edgeguard

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/shared/backoff"
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
//
// The account's JetStream API has no responders for a moment while the
// servers apply an account update, which is what every revocation pushes:
// a notifier starting during another's revocation waits that out (until
// ctx ends) instead of failing its start.
func EnsureLockBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	wait := backoff.New(20*time.Millisecond, time.Second)
	for {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: LockBucket, Description: "backinstock: one edge revocation at a time per account",
			TTL: lockTTL, History: 1, Storage: jetstream.MemoryStorage, Replicas: max(replicas, 1),
		})
		if err == nil {
			return kv, nil
		}
		if !applyingAccountUpdate(err) || !wait.Wait(ctx) {
			return nil, fmt.Errorf("revocation lease bucket %s: %w", LockBucket, err)
		}
	}
}

// applyingAccountUpdate reports an error of the moment an account update
// takes the account's JetStream API away: it passes by itself. The server
// answers it as no responders, or as "not enabled" for the account (10039)
// or, seen in CI, for the server (10076) while the account is re-registered.
func applyingAccountUpdate(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, jetstream.ErrJetStreamNotEnabled)
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
		// Another revocation holds the lease, or its account update is
		// being applied: wait for it either way.
		if !errors.Is(err, jetstream.ErrKeyExists) && !applyingAccountUpdate(err) {
			return nil, fmt.Errorf("%w: revocation lease: %w", ErrUnavailable, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: another revocation holds the lease: %w", ErrUnavailable, ctx.Err())
		case <-time.After(10*time.Millisecond + rand.N(40*time.Millisecond)):
		}
	}
}
