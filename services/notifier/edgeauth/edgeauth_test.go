package edgeauth_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/services/notifier/edgeauth"
	"backinstock/services/notifier/edgeauth/edgeserver"
	"backinstock/shared/testenv"
	"backinstock/topics/edge"
)

// startSecured runs a nats-server trusting a fresh setup written to a temp dir.
func startSecured(t *testing.T) (*testenv.NATS, *edgeauth.Setup, string) {
	t.Helper()
	dir := t.TempDir()
	setup, err := edgeauth.LoadOrCreate(filepath.Join(dir, "auth"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := edgeauth.LoadOrCreate(filepath.Join(dir, "auth"))
	if err != nil || again.AppPub != setup.AppPub {
		t.Fatalf("reload setup: %v (app %s vs %s)", err, again.AppPub, setup.AppPub)
	}
	conf, err := edgeserver.Configure(setup)
	if err != nil {
		t.Fatal(err)
	}
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: filepath.Join(dir, "js"), Configure: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n, setup, filepath.Join(dir, "auth", edgeauth.FileServiceCreds)
}

type browser struct {
	nc   *nats.Conn
	errs chan error
}

func connectBrowser(t *testing.T, url string, tok edgeauth.Token) *browser {
	t.Helper()
	b := &browser{errs: make(chan error, 16)}
	nc, err := nats.Connect(url,
		nats.UserJWT(func() (string, error) { return tok.JWT, nil }, func([]byte) ([]byte, error) { return nil, nil }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { b.errs <- err }),
	)
	if err != nil {
		t.Fatalf("browser connect: %v", err)
	}
	t.Cleanup(nc.Close)
	b.nc = nc
	return b
}

func TestBrowserSeesOnlyItsOwnSubjects(t *testing.T) {
	n, setup, credsFile := startSecured(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	svc, err := nats.Connect(n.URL(), nats.UserCredentials(credsFile))
	if err != nil {
		t.Fatalf("service connect: %v", err)
	}
	defer svc.Close()
	js, err := jetstream.New(svc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: edge.StreamName("r1"), Subjects: []string{edge.RegionFilter("r1")}}); err != nil {
		t.Fatalf("service creates stream (JetStream enabled in the app account): %v", err)
	}

	tok, err := setup.Issuer().IssueUser("alice", time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject != "edge.*.*.alice" {
		t.Fatalf("subject = %s", tok.Subject)
	}
	alice := connectBrowser(t, n.WSURL(), tok) // over websocket, as a browser
	own, err := alice.nc.SubscribeSync(tok.Subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-alice.errs:
		t.Fatalf("own subscription refused: %v", err)
	default:
	}
	if _, err := js.Publish(ctx, edge.Subject("r1", "app", "alice"), []byte("for alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, edge.Subject("r1", "app", "bob"), []byte("for bob")); err != nil {
		t.Fatal(err)
	}
	m, err := own.NextMsg(5 * time.Second)
	if err != nil || string(m.Data) != "for alice" {
		t.Fatalf("alice's own message: %v %v", m, err)
	}

	for _, subj := range []string{"edge.*.*.bob", "edge.r1.app.bob", ">", "edge.>", "_INBOX.>", "$JS.API.>"} {
		t.Run("subscribe "+subj, func(t *testing.T) {
			if _, err := alice.nc.SubscribeSync(subj); err != nil {
				t.Fatal(err)
			}
			_ = alice.nc.Flush()
			select {
			case err := <-alice.errs:
				if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
					t.Fatalf("want a permissions violation, got %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("subscription to %s was not refused", subj)
			}
		})
	}
	t.Run("publish", func(t *testing.T) {
		_ = alice.nc.Publish("edge.r1.app.alice", []byte("spoof"))
		_ = alice.nc.Flush()
		select {
		case err := <-alice.errs:
			if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
				t.Fatalf("want a permissions violation, got %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("publish was not refused")
		}
	})
	// Nothing of bob's leaked into alice's own subscription.
	if m, err := own.NextMsg(200 * time.Millisecond); err == nil {
		t.Fatalf("alice received %q", m.Data)
	}
}

func TestExpiredTokenIsRefused(t *testing.T) {
	n, setup, _ := startSecured(t)
	tok, err := setup.Issuer().IssueUser("alice", time.Minute, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(n.WSURL(), nats.UserJWT(func() (string, error) { return tok.JWT, nil }, func([]byte) ([]byte, error) { return nil, nil }),
		nats.MaxReconnects(0))
	if err == nil {
		nc.Close()
		t.Fatal("expired token accepted")
	}
}

func TestIssuerFromSeedFile(t *testing.T) {
	dir := t.TempDir()
	setup, err := edgeauth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	seed, err := os.ReadFile(filepath.Join(dir, edgeauth.FileAppSeed))
	if err != nil {
		t.Fatal(err)
	}
	is, err := edgeauth.NewIssuer(seed)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := is.IssueUser("bad.user", time.Minute, time.Now()); err == nil {
		t.Fatal("user id with a dot accepted")
	}
	if _, err := edgeauth.NewIssuer([]byte("garbage")); err == nil {
		t.Fatal("garbage seed accepted")
	}
	_ = setup
}
