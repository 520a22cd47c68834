package edgeguard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"backinstock/services/notifier/edgeauth"
	"backinstock/shared/config"
)

const (
	claimsLookup = "$SYS.REQ.ACCOUNT.%s.CLAIMS.LOOKUP"
	claimsUpdate = "$SYS.REQ.CLAIMS.UPDATE"
)

// RevokerOptions of a Revoker.
type RevokerOptions struct {
	// Issuer derives a user id's key and names the account.
	Issuer *edgeauth.Issuer
	// Signer re-signs the account: the operator's key or one of its
	// signing keys (EDGE_OPERATOR_SEED_FILE).
	Signer nkeys.KeyPair
	// TokenTTL is the longest lifetime of a browser token: revocations older
	// than that match no live token and are dropped from the account.
	TokenTTL time.Duration
	// Locks is the lease bucket (EnsureLockBucket) that makes revocations
	// take turns.
	Locks jetstream.KeyValue
	// Timeout bounds each request to the servers.
	Timeout time.Duration
	Metrics *Metrics
	Now     func() time.Time
}

func (o *RevokerOptions) setDefaults() {
	config.Default(&o.Timeout, 5*time.Second)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// Validate names what is wrong.
func (o RevokerOptions) Validate() error {
	var p config.Problems
	if o.Issuer == nil {
		p.Addf("EDGE_ACCOUNT_SEED_FILE", "required to revoke")
	}
	if o.Signer == nil {
		p.Addf("EDGE_OPERATOR_SEED_FILE", "required to revoke")
	} else if pub, err := o.Signer.PublicKey(); err != nil || !nkeys.IsValidPublicOperatorKey(pub) {
		p.Addf("EDGE_OPERATOR_SEED_FILE", "not an operator seed")
	}
	if o.Locks == nil {
		p.Addf("Locks", "required: the revocation lease bucket")
	}
	config.Positive(&p, "EDGE_TOKEN_TTL", o.TokenTTL)
	config.Positive(&p, "Timeout", o.Timeout)
	return p.Err()
}

// Revoker adds revocations to the app account through the system account:
// under the account's lease (lock.go) it reads the account JWT the servers
// hold (the full resolver answers lookups), adds the user's key, re-signs it
// and pushes it as a claims update, then reads it back. Every server then
// closes the connections of tokens issued up to that moment, and refuses
// those tokens from then on.
type Revoker struct {
	nc *nats.Conn
	o  RevokerOptions
}

// NewRevoker returns a revoker on nc, a connection of a system-account user.
func NewRevoker(nc *nats.Conn, o RevokerOptions) (*Revoker, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("edge revoker: %w", err)
	}
	return &Revoker{nc: nc, o: o}, nil
}

// Revocation is what Revoke did.
type Revocation struct {
	UserID  string
	UserKey string
	// Before: tokens of the user issued at or before this second are
	// refused (JWT times are whole seconds).
	Before time.Time
}

// ErrUnavailable wraps the failures of the servers' side (no answer, an
// update refused): the caller may retry.
var ErrUnavailable = errors.New("edge revocation unavailable")

// attempts bounds the pushes of one revocation: under the lease the first
// one holds; the read-back catches a server that answered a lookup before
// the update reached it, or a lease that expired under a stalled holder.
const attempts = 3

// Revoke revokes every token of userID issued up to now and returns once the
// servers hold the update.
func (r *Revoker) Revoke(ctx context.Context, userID string) (Revocation, error) {
	key, err := r.o.Issuer.UserKey(userID)
	if err != nil {
		return Revocation{}, err
	}
	lctx, cancel := context.WithTimeout(ctx, lockTTL)
	release, err := acquire(lctx, r.o.Locks, r.o.Issuer.Account())
	cancel()
	if err != nil {
		return Revocation{}, err
	}
	defer release()
	now := r.o.Now()
	rev := Revocation{UserID: userID, UserKey: key, Before: time.Unix(now.Unix(), 0).UTC()}
	for range attempts {
		current, err := r.lookup(ctx)
		if err != nil {
			return rev, err
		}
		if revokedSince(current, key, now) {
			r.o.Metrics.Revocations.Inc()
			return rev, nil
		}
		updated, err := edgeauth.RevokeUser(current, r.o.Signer, key, now, r.o.Now().Add(-r.o.TokenTTL))
		if err != nil {
			return rev, err
		}
		if err := r.update(ctx, updated); err != nil {
			return rev, err
		}
	}
	return rev, fmt.Errorf("%w: the servers still lack the revocation of %s after %d updates", ErrUnavailable, userID, attempts)
}

// revokedSince says whether the account JWT revokes key's tokens issued at
// or before at.
func revokedSince(accountJWT, key string, at time.Time) bool {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return false
	}
	ts, ok := ac.Revocations[key]
	return ok && ts >= at.Unix()
}

func (r *Revoker) request(ctx context.Context, subj string, data []byte) (*nats.Msg, error) {
	ctx, cancel := context.WithTimeout(ctx, r.o.Timeout)
	defer cancel()
	m, err := r.nc.RequestWithContext(ctx, subj, data)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, subj, err)
	}
	return m, nil
}

// lookup reads the account JWT a server holds.
func (r *Revoker) lookup(ctx context.Context) (string, error) {
	account := r.o.Issuer.Account()
	m, err := r.request(ctx, fmt.Sprintf(claimsLookup, account), nil)
	if err != nil {
		return "", err
	}
	if len(m.Data) == 0 {
		return "", fmt.Errorf("%w: no server holds account %s (is the resolver `full`?)", ErrUnavailable, account)
	}
	return string(m.Data), nil
}

// update pushes the account JWT; a server answers for the cluster (the full
// resolver passes it on to the others).
func (r *Revoker) update(ctx context.Context, accountJWT string) error {
	m, err := r.request(ctx, claimsUpdate, []byte(accountJWT))
	if err != nil {
		return err
	}
	var resp struct {
		Data *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"data"`
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return fmt.Errorf("%w: claims update answer %q: %w", ErrUnavailable, m.Data, err)
	}
	if resp.Error != nil {
		return fmt.Errorf("%w: claims update refused: %s", ErrUnavailable, resp.Error.Description)
	}
	return nil
}
