package edgeguard_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/services/notifier/edgeauth"
	"backinstock/services/notifier/edgeauth/edgeserver"
	"backinstock/services/notifier/internal/edgeguard"
	"backinstock/shared/testenv"
)

// edgeEnv is an operator-mode nats-server (websocket on) trusting a fresh
// setup, and a system-account connection.
type edgeEnv struct {
	nats  *testenv.NATS
	setup *edgeauth.Setup
	sys   *nats.Conn
	svc   *nats.Conn // the notifier's service user (the revocation lease)
}

func startEdge(t *testing.T) *edgeEnv {
	t.Helper()
	dir := t.TempDir()
	setup, err := edgeauth.LoadOrCreate(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	conf, err := edgeserver.Configure(setup, filepath.Join(dir, "accounts"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: filepath.Join(dir, "js"), Configure: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	sys, err := nats.Connect(n.URL(), nats.UserCredentials(filepath.Join(dir, "auth", edgeauth.FileSystemCreds)),
		nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatalf("system user connect: %v", err)
	}
	t.Cleanup(sys.Close)
	svc, err := nats.Connect(n.URL(), nats.UserCredentials(filepath.Join(dir, "auth", edgeauth.FileServiceCreds)))
	if err != nil {
		t.Fatalf("service user connect: %v", err)
	}
	t.Cleanup(svc.Close)
	return &edgeEnv{nats: n, setup: setup, sys: sys, svc: svc}
}

// browser is one websocket connection of a user, as nats.ws makes it; it
// records being closed. No reconnect: a closed connection stays closed, so
// the test sees each close.
type browser struct {
	user   string
	nc     *nats.Conn
	opened time.Time
	closed chan struct{}
}

func (e *edgeEnv) token(t *testing.T, user string) edgeauth.Token {
	t.Helper()
	tok, err := e.setup.Issuer().IssueUser(user, time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *edgeEnv) connect(t *testing.T, tok edgeauth.Token, user string) *browser {
	t.Helper()
	b, err := e.dial(t, tok, user)
	if err != nil {
		t.Fatalf("%s connects: %v", user, err)
	}
	return b
}

func (e *edgeEnv) dial(t *testing.T, tok edgeauth.Token, user string) (*browser, error) {
	b := &browser{user: user, closed: make(chan struct{}), opened: time.Now()}
	nc, err := nats.Connect(e.nats.WSURL(),
		nats.UserJWT(func() (string, error) { return tok.JWT, nil }, func([]byte) ([]byte, error) { return nil, nil }),
		nats.NoReconnect(),
		nats.ClosedHandler(func(*nats.Conn) { close(b.closed) }),
		nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}), // not nats.go's print to stderr
	)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	b.nc = nc
	return b, nil
}

// connectOver opens a connection beyond the limit and says how soon after
// the attempt began it was closed. The kick may even beat the server's
// answer to the handshake: then the connect itself fails with the closed
// socket (not with an authorization error), which is a refusal.
func (e *edgeEnv) connectOver(t *testing.T, tok edgeauth.Token, user string) time.Duration {
	t.Helper()
	start := time.Now()
	b, err := e.dial(t, tok, user)
	if err != nil {
		if errors.Is(err, nats.ErrAuthorization) {
			t.Fatalf("%s: %v (the token must be valid; the guard closes, it does not refuse)", user, err)
		}
		return time.Since(start)
	}
	b.waitClosed(t, closeBound)
	return time.Since(start)
}

func (b *browser) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// waitClosed waits for the close and says how long after the connect it came.
func (b *browser) waitClosed(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	select {
	case <-b.closed:
		return time.Since(b.opened)
	case <-time.After(within):
		t.Fatalf("%s's connection still open after %s", b.user, within)
		return 0
	}
}

// runGuard runs a guard until the test ends and returns once it has its
// counts: a warm-up user connected first shows in the guard's users gauge
// after its first connection list.
func runGuard(t *testing.T, e *edgeEnv, limit int) {
	t.Helper()
	e.connect(t, e.token(t, "warmup"), "warmup")
	m := edgeguard.NewMetrics(nil)
	g, err := edgeguard.New(e.sys, edgeguard.Options{
		Account: e.setup.AppPub, MaxConnsPerUser: limit, ListWait: 200 * time.Millisecond, Metrics: m,
		Log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("guard: %v", err)
		}
	})
	testenv.Eventually(t, 10*time.Second, func() bool { return testutil.ToFloat64(m.Users) >= 1 }, "the guard counts the warm-up user")
}

// TestSeventeenthConnectionIsClosed: with the default limit of 16, one
// user's 17th websocket connection is closed within closeBound while the 16
// before it stay open, and another user still connects.
func TestSeventeenthConnectionIsClosed(t *testing.T) {
	e := startEdge(t)
	runGuard(t, e, 16)

	tok := e.token(t, "alice")
	var alice []*browser
	for i := range 16 {
		alice = append(alice, e.connect(t, tok, fmt.Sprintf("alice#%d", i+1)))
	}
	bob := e.connect(t, e.token(t, "bob"), "bob")
	took := e.connectOver(t, tok, "alice#17")
	t.Logf("the 17th connection was closed %s after its connect began", took.Round(time.Millisecond))

	// The guard decides in event order: anything it would have done to the
	// first 16 or to bob happened before it closed the 17th. An 18th is
	// closed too, so the place freed by the 17th went to nobody.
	took = e.connectOver(t, tok, "alice#18")
	t.Logf("the 18th connection was closed %s after its connect began", took.Round(time.Millisecond))
	for _, b := range append(alice, bob) {
		if b.isClosed() {
			t.Fatalf("%s was closed", b.user)
		}
		if err := b.nc.Flush(); err != nil {
			t.Fatalf("%s: %v", b.user, err)
		}
	}

	// A place freed by a closed connection is a place again.
	alice[0].nc.Close()
	waitCount(t, e, "alice", 15)
	again := e.connect(t, tok, "alice#19")
	bob2 := e.connect(t, e.token(t, "bob"), "bob#2")
	waitCount(t, e, "alice", 16)
	if again.isClosed() || bob2.isClosed() {
		t.Fatal("a connection within the limit was closed")
	}
}

// TestGuardRebuildsCountsOnStart: connections opened while no guard ran are
// counted from the server's connection list when one starts, and the newest
// beyond the limit are closed; the oldest stay.
func TestGuardRebuildsCountsOnStart(t *testing.T) {
	e := startEdge(t)
	tok := e.token(t, "carol")
	var carol []*browser
	for i := range 7 {
		carol = append(carol, e.connect(t, tok, fmt.Sprintf("carol#%d", i+1)))
	}
	dave := e.connect(t, e.token(t, "dave"), "dave")
	runGuard(t, e, 4)
	for _, b := range carol[4:] {
		b.waitClosed(t, closeBound+time.Second) // plus the list's wait
	}
	for _, b := range append(carol[:4], dave) {
		if b.isClosed() {
			t.Fatalf("%s was closed", b.user)
		}
	}
}

// TestServiceConnectionsAreNotLimited: the services' own users (the
// notifier's creds, many replicas with one creds file) carry no edge tag.
func TestServiceConnectionsAreNotLimited(t *testing.T) {
	e := startEdge(t)
	runGuard(t, e, 1)
	creds, err := e.setup.ServiceCreds("svc")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "svc.creds")
	if err := os.WriteFile(f, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	var conns []*nats.Conn
	for range 3 {
		nc, err := nats.Connect(e.nats.URL(), nats.UserCredentials(f), nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		conns = append(conns, nc)
	}
	// A browser user over the limit is closed; had the services counted,
	// they would have been closed before it.
	tok := e.token(t, "erin")
	e.connect(t, tok, "erin#1")
	e.connectOver(t, tok, "erin#2")
	for _, nc := range conns {
		if !nc.IsConnected() {
			t.Fatal("a service connection was closed")
		}
	}
}

// waitCount waits until the server lists n connections of user.
func waitCount(t *testing.T, e *edgeEnv, user string, n int) {
	t.Helper()
	key, err := e.setup.Issuer().UserKey(user)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, closeBound, func() bool {
		cz, err := e.nats.Server.Connz(&server.ConnzOptions{Account: e.setup.AppPub, User: key, State: server.ConnOpen})
		return err == nil && cz.NumConns == n
	}, "%s has %d connections", user, n)
}
