package edgeguard_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/services/notifier/edgeauth"
	"backinstock/services/notifier/internal/edgeguard"
	"backinstock/shared/testenv"
)

func newRevoker(t *testing.T, e *edgeEnv, now func() time.Time) *edgeguard.Revoker {
	t.Helper()
	js, err := jetstream.New(e.svc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	locks, err := edgeguard.EnsureLockBucket(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	r, err := edgeguard.NewRevoker(e.sys, edgeguard.RevokerOptions{
		Issuer: e.setup.Issuer(), Signer: e.setup.OperatorSigningKP, TokenTTL: 15 * time.Minute, Locks: locks, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// connectErr is the error of a connect that must fail. Over websocket the
// server's -ERR 'Authorization Violation' races its close, so the client
// reports either that or the broken socket.
func (e *edgeEnv) connectErr(tok edgeauth.Token) error {
	nc, err := nats.Connect(e.nats.WSURL(),
		nats.UserJWT(func() (string, error) { return tok.JWT, nil }, func([]byte) ([]byte, error) { return nil, nil }),
		nats.NoReconnect())
	if err == nil {
		nc.Close()
		return nil
	}
	return err
}

// TestRevokedTokenConnectionIsClosed: revoking a user closes every open
// connection of every token it had within closeBound, refuses those tokens
// from then on, also after a server restart, and touches no other user; a
// token issued after the revocation works.
func TestRevokedTokenConnectionIsClosed(t *testing.T) {
	e := startEdge(t)
	r := newRevoker(t, e, nil)
	tok1, tok2 := e.token(t, "alice"), e.token(t, "alice")
	a1, a2 := e.connect(t, tok1, "alice#1"), e.connect(t, tok2, "alice#2")
	bob := e.connect(t, e.token(t, "bob"), "bob")

	start := time.Now()
	rev, err := r.Revoke(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []*browser{a1, a2} {
		select {
		case <-b.closed:
		case <-time.After(closeBound):
			t.Fatalf("%s still open %s after the revocation", b.user, closeBound)
		}
	}
	t.Logf("alice's connections were closed %s after the revocation was asked", time.Since(start).Round(time.Millisecond))
	if bob.isClosed() || bob.nc.Flush() != nil {
		t.Fatal("bob was closed")
	}
	if err := e.connectErr(tok1); err == nil {
		t.Fatal("the revoked token connected")
	}
	if key, _ := e.setup.Issuer().UserKey("alice"); rev.UserKey != key || rev.UserID != "alice" || rev.Before.After(time.Now()) {
		t.Fatalf("revocation %+v", rev)
	}

	// The revocation is stored by the resolver: a restarted server still
	// refuses the token.
	if err := e.nats.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := e.connectErr(tok1); err == nil {
		t.Fatal("the revoked token connected after a server restart")
	}
	// A token issued after the revocation's second works (JWT times are
	// whole seconds, and the issue time is the clock's at signing).
	testenv.Eventually(t, 3*time.Second, func() bool { return time.Now().Unix() > rev.Before.Unix() }, "the next second")
	if err := e.connectErr(e.token(t, "alice")); err != nil {
		t.Fatalf("a token issued after the revocation: %v", err)
	}
}

// TestConcurrentRevocationsAreAllKept: notifiers revoking different users
// at the same moment would read the same account, and a later push would
// drop an entry already confirmed; the lease makes them take turns.
func TestConcurrentRevocationsAreAllKept(t *testing.T) {
	e := startEdge(t)
	users := []string{"u1", "u2", "u3", "u4", "u5", "u6"}
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for _, u := range users {
		// One revoker each, as on separate notifiers.
		r := newRevoker(t, e, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Revoke(context.Background(), u); err != nil {
				errs <- fmt.Errorf("%s: %w", u, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	m, err := e.sys.Request(fmt.Sprintf("$SYS.REQ.ACCOUNT.%s.CLAIMS.LOOKUP", e.setup.AppPub), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := jwt.DecodeAccountClaims(string(m.Data))
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		key, _ := e.setup.Issuer().UserKey(u)
		if _, ok := ac.Revocations[key]; !ok {
			t.Errorf("revocation of %s lost", u)
		}
	}
	// The account kept what it had: JetStream for the edge streams.
	if ac.Limits.JetStreamLimits.DiskStorage != -1 {
		t.Fatalf("account limits changed: %+v", ac.Limits.JetStreamLimits)
	}
}

// TestOldRevocationsAreDropped: an entry older than a token lifetime
// matches no live token, so the next revocation drops it.
func TestOldRevocationsAreDropped(t *testing.T) {
	e := startEdge(t)
	past := time.Now().Add(-time.Hour)
	if _, err := newRevoker(t, e, func() time.Time { return past }).Revoke(context.Background(), "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := newRevoker(t, e, nil).Revoke(context.Background(), "new"); err != nil {
		t.Fatal(err)
	}
	m, err := e.sys.Request(fmt.Sprintf("$SYS.REQ.ACCOUNT.%s.CLAIMS.LOOKUP", e.setup.AppPub), nil, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ac, _ := jwt.DecodeAccountClaims(string(m.Data))
	oldKey, _ := e.setup.Issuer().UserKey("old")
	newKey, _ := e.setup.Issuer().UserKey("new")
	if _, ok := ac.Revocations[oldKey]; ok {
		t.Fatal("an hour-old revocation was kept with a 15 min token lifetime")
	}
	if _, ok := ac.Revocations[newKey]; !ok {
		t.Fatal("the new revocation is missing")
	}
}

func TestRevokerRefusesBadInput(t *testing.T) {
	e := startEdge(t)
	r := newRevoker(t, e, nil)
	if _, err := r.Revoke(context.Background(), "a.b"); err == nil {
		t.Fatal("user id with a dot accepted")
	}
	// An account key where the operator's signing key belongs, no lease bucket.
	_, err := edgeguard.NewRevoker(e.sys, edgeguard.RevokerOptions{Issuer: e.setup.Issuer(), Signer: e.setup.AppKP, TokenTTL: time.Minute})
	if err == nil || !strings.Contains(err.Error(), "EDGE_OPERATOR_SEED_FILE") || !strings.Contains(err.Error(), "Locks") {
		t.Fatalf("NewRevoker = %v, want errors naming EDGE_OPERATOR_SEED_FILE and Locks", err)
	}
}

// TestRevocationWaitsForTheLease: while another notifier holds the account's
// lease a revocation waits, and gives up as unavailable when its context
// ends first; once the lease is free it goes through.
func TestRevocationWaitsForTheLease(t *testing.T) {
	e := startEdge(t)
	r := newRevoker(t, e, nil)
	js, _ := jetstream.New(e.svc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, edgeguard.LockBucket)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := kv.Create(ctx, e.setup.AppPub, []byte("another notifier"))
	if err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancelShort()
	if _, err := r.Revoke(short, "alice"); !errors.Is(err, edgeguard.ErrUnavailable) {
		t.Fatalf("Revoke under a held lease = %v, want ErrUnavailable", err)
	}
	if err := kv.Delete(ctx, e.setup.AppPub, jetstream.LastRevision(rev)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Revoke(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	// The lease was handed back.
	if _, err := kv.Get(ctx, e.setup.AppPub); !errors.Is(err, jetstream.ErrKeyNotFound) && !errors.Is(err, jetstream.ErrKeyDeleted) {
		t.Fatalf("lease after the revocation: %v", err)
	}
}
