// Package store keeps the gateway's Redis state: per notification one key
// that is first a claim (a gateway is sending it right now) and then the
// delivered marker (the provider accepted it).
//
//	gwy:{<region>|<user_id>}:delivered:<notification_id>
//	    "claim:<token>"                      PX = claim TTL, while one gateway sends
//	    {"provider":…,"attempt":…,"at":…}    EX = marker TTL, once the provider accepted
//
// The claim is what the notifier does without (docs/delivery-semantics.md):
// there, a second publish of the same id is absorbed by JetStream's
// duplicate window; here the second call would reach a provider that keeps
// no such window, so two gateways must not send one notification at the
// same time (a message redelivered while its first holder still works, the
// same notification twice in the stream). Taking it costs nothing: the SET
// NX that claims is also the lookup that finds the marker.
//
// Keys are spread by user, like the notifier's markers, so one big restock
// lands on every node of a Redis Cluster. They are built by
// backinstock/topics/userdata, where the wishlist's export and erasure find
// them.
package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/topics/userdata"
)

// State is what Claim found.
type State int

const (
	// Claimed: the caller holds the claim and may send.
	Claimed State = iota
	// Busy: another sender holds the claim.
	Busy
	// Done: the delivered marker is there; nothing is to be sent.
	Done
)

func (s State) String() string {
	switch s {
	case Claimed:
		return "claimed"
	case Busy:
		return "busy"
	case Done:
		return "done"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Delivered is what the marker remembers of the accepted send, so that a
// receipt written again after a crash is the same receipt (same attempt,
// same time, same provider message id).
type Delivered struct {
	Provider          string    `json:"provider"`
	ProviderMessageID string    `json:"provider_message_id,omitempty"`
	Attempt           int       `json:"attempt"`
	At                time.Time `json:"at"`
}

// Claim is the answer of Store.Claim.
type Claim struct {
	State State
	// Delivered is the marker's content when State is Done.
	Delivered Delivered
	key       string
	token     string
}

// Store wraps one Redis client for one region.
type Store struct {
	rdb       redis.UniversalClient
	region    string
	claimTTL  time.Duration
	markerTTL time.Duration
}

// New builds the store of region. A claim lapses after claimTTL (the
// consumer's ack wait: by the time JetStream hands a message to another
// gateway, the claim of one that died with it has lapsed); a marker after
// markerTTL (at least as long as the edge stream keeps messages).
func New(rdb redis.UniversalClient, region string, claimTTL, markerTTL time.Duration) *Store {
	return &Store{rdb: rdb, region: region, claimTTL: claimTTL, markerTTL: markerTTL}
}

func (s *Store) key(userID, notificationID string) string {
	return userdata.GatewayDeliveredKey(s.region, userID, notificationID)
}

const claimPrefix = userdata.GatewayClaimPrefix

// Claim takes the claim on the notification, or says who has it. One
// round trip when the notification is new (SET NX), two otherwise.
func (s *Store) Claim(ctx context.Context, userID, notificationID string) (Claim, error) {
	var b [16]byte
	_, _ = rand.Read(b[:])
	c := Claim{key: s.key(userID, notificationID), token: claimPrefix + hex.EncodeToString(b[:])}
	// Twice at most: a claim that lapses between SET NX and GET.
	for range 2 {
		ok, err := s.rdb.SetNX(ctx, c.key, c.token, s.claimTTL).Result()
		if err != nil {
			return Claim{}, fmt.Errorf("claim %s: %w", notificationID, err)
		}
		if ok {
			c.State = Claimed
			return c, nil
		}
		v, err := s.rdb.Get(ctx, c.key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return Claim{}, fmt.Errorf("claim %s: %w", notificationID, err)
		case v == c.token:
			// go-redis retried a SET NX whose first try had landed.
			c.State = Claimed
			return c, nil
		case strings.HasPrefix(v, claimPrefix):
			c.State = Busy
			return c, nil
		}
		if err := json.Unmarshal([]byte(v), &c.Delivered); err != nil {
			return Claim{}, fmt.Errorf("claim %s: marker %q: %w", notificationID, v, err)
		}
		c.State = Done
		return c, nil
	}
	return Claim{}, fmt.Errorf("claim %s: the key keeps changing", notificationID)
}

// MarkDelivered replaces the claim with the delivered marker.
func (s *Store) MarkDelivered(ctx context.Context, c Claim, d Delivered) error {
	v, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, c.key, v, s.markerTTL).Err(); err != nil {
		return fmt.Errorf("mark %s delivered: %w", c.key, err)
	}
	return nil
}

// release deletes the key only while it holds the caller's claim; running
// it twice (go-redis retries after a timeout) deletes nothing the second
// time.
var release = redis.NewScript(`if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`)

// Release gives the claim up after a failed send, so the retry is not
// kept waiting for it to lapse.
func (s *Store) Release(ctx context.Context, c Claim) error {
	if err := release.Run(ctx, s.rdb, []string{c.key}, c.token).Err(); err != nil {
		return fmt.Errorf("release %s: %w", c.key, err)
	}
	return nil
}

// renew extends the caller's claim, or takes the key again if it lapsed
// and nobody else took it; otherwise it returns what the key holds now.
var renew = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return '' end
if not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return '' end
return v`)

// Renew gives the claim a fresh lifetime after a wait that may have
// outlasted it (a provider's rate limit): Claimed if the caller still
// holds it (or took it back from nobody), Busy if another sender claimed
// the notification meanwhile, Done with the marker if it was delivered
// meanwhile. Running it twice is harmless.
func (s *Store) Renew(ctx context.Context, c Claim) (Claim, error) {
	v, err := renew.Run(ctx, s.rdb, []string{c.key}, c.token, s.claimTTL.Milliseconds()).Text()
	if err != nil {
		return Claim{}, fmt.Errorf("renew %s: %w", c.key, err)
	}
	switch {
	case v == "":
		c.State = Claimed
	case strings.HasPrefix(v, claimPrefix):
		c.State = Busy
	default:
		if err := json.Unmarshal([]byte(v), &c.Delivered); err != nil {
			return Claim{}, fmt.Errorf("renew %s: marker %q: %w", c.key, v, err)
		}
		c.State = Done
	}
	return c, nil
}
