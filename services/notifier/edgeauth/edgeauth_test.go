package edgeauth_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
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
	conf, err := edgeserver.Configure(setup, filepath.Join(dir, "accounts"))
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
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: edge.StreamName("r1", "app"), Subjects: []string{edge.ChannelFilter("r1", "app")}}); err != nil {
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

// TestUserTokenOnlyOverWebsocket: a browser token is refused on the plain
// NATS port (the services' port); the same token connects over websocket.
func TestUserTokenOnlyOverWebsocket(t *testing.T) {
	n, setup, _ := startSecured(t)
	tok, err := setup.Issuer().IssueUser("alice", time.Minute, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	jwtOpt := nats.UserJWT(func() (string, error) { return tok.JWT, nil }, func([]byte) ([]byte, error) { return nil, nil })
	nc, err := nats.Connect(n.URL(), jwtOpt, nats.NoReconnect())
	if err == nil {
		nc.Close()
		t.Fatal("a browser token connected on the plain NATS port")
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("plain port: %v, want an authorization violation", err)
	}
	nc, err = nats.Connect(n.WSURL(), jwtOpt, nats.NoReconnect())
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	nc.Close()
}

// TestUserKeyIsStablePerUser: every token of a user carries one key, known
// only to holders of the account seed; other users and accounts differ.
func TestUserKeyIsStablePerUser(t *testing.T) {
	a, err := edgeauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := edgeauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := a.AppKP.Seed()
	fromSeed, err := edgeauth.NewIssuer(seed)
	if err != nil {
		t.Fatal(err)
	}
	key := func(is *edgeauth.Issuer, u string) string {
		k, err := is.UserKey(u)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	alice := key(a.Issuer(), "alice")
	if key(fromSeed, "alice") != alice {
		t.Fatal("two issuers of one account derive different keys")
	}
	if key(a.Issuer(), "bob") == alice || key(b.Issuer(), "alice") == alice {
		t.Fatal("the key is not per user and account")
	}
	for range 2 {
		tok, err := a.Issuer().IssueUser("alice", time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		uc, err := jwt.DecodeUserClaims(tok.JWT)
		if err != nil {
			t.Fatal(err)
		}
		if uc.Subject != alice || !uc.Tags.Contains(edgeauth.EdgeUserTag) || !uc.BearerToken ||
			len(uc.AllowedConnectionTypes) != 1 || uc.AllowedConnectionTypes[0] != jwt.ConnectionTypeWebsocket {
			t.Fatalf("token claims %+v", uc)
		}
		if id, ok := edgeauth.UserIDFromName(uc.Name); !ok || id != "alice" {
			t.Fatalf("name %q", uc.Name)
		}
	}
}

func TestRevokeUser(t *testing.T) {
	s, err := edgeauth.Generate()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	alice, _ := s.Issuer().UserKey("alice")
	bob, _ := s.Issuer().UserKey("bob")
	carol, _ := s.Issuer().UserKey("carol")
	ac, _ := jwt.DecodeAccountClaims(s.AppJWT)
	ac.RevokeAt(bob, now.Add(-time.Hour))        // older than a token lifetime
	ac.RevokeAt(carol, now.Add(-10*time.Minute)) // within it
	ac.RevokeAt(jwt.All, now.Add(-48*time.Hour)) // an operator's own: kept
	start, err := ac.Encode(s.OperatorKP)
	if err != nil {
		t.Fatal(err)
	}
	out, err := edgeauth.RevokeUser(start, s.OperatorSigningKP, alice, now, now.Add(-15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	got, err := jwt.DecodeAccountClaims(out)
	if err != nil {
		t.Fatal(err)
	}
	spk, _ := s.OperatorSigningKP.PublicKey()
	if got.Issuer != spk || got.Subject != s.AppPub {
		t.Fatalf("issuer %s subject %s", got.Issuer, got.Subject)
	}
	if got.Revocations[alice] != now.Unix() {
		t.Fatalf("alice: %v", got.Revocations)
	}
	if _, ok := got.Revocations[bob]; ok {
		t.Fatal("an expired revocation was kept")
	}
	if _, ok := got.Revocations[carol]; !ok {
		t.Fatal("a live revocation was dropped")
	}
	if _, ok := got.Revocations[jwt.All]; !ok {
		t.Fatal("the revocation of all was dropped")
	}
	if got.Limits.JetStreamLimits.DiskStorage != -1 || got.Name != "APP" {
		t.Fatalf("the rest of the account changed: %+v", got)
	}
	if _, err := edgeauth.RevokeUser(start, s.OperatorSigningKP, s.AppPub, now, now); err == nil {
		t.Fatal("an account key accepted as a user key")
	}
}

// TestLoadOrCreateUpgradesAnOlderSetup: a setup written before the operator
// signing key and the system creds gets both, and keeps its keys.
func TestLoadOrCreateUpgradesAnOlderSetup(t *testing.T) {
	dir := t.TempDir()
	s, err := edgeauth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	// What an older setup lacked: the signing key (and its listing) and the system creds.
	oc, _ := jwt.DecodeOperatorClaims(s.OperatorJWT)
	oc.SigningKeys = nil
	old, _ := oc.Encode(s.OperatorKP)
	if err := os.WriteFile(filepath.Join(dir, edgeauth.FileOperatorJWT), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{edgeauth.FileOperatorSigningSeed, edgeauth.FileSystemCreds} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	up, err := edgeauth.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if up.AppPub != s.AppPub || up.SystemPub != s.SystemPub {
		t.Fatal("keys changed")
	}
	oc, err = jwt.DecodeOperatorClaims(up.OperatorJWT)
	if err != nil {
		t.Fatal(err)
	}
	spk, _ := up.OperatorSigningKP.PublicKey()
	if !oc.SigningKeys.Contains(spk) {
		t.Fatal("the new signing key is not listed in the operator JWT")
	}
	if _, err := os.Stat(filepath.Join(dir, edgeauth.FileSystemCreds)); err != nil {
		t.Fatal(err)
	}
	if again, err := edgeauth.LoadOrCreate(dir); err != nil || again.OperatorJWT != up.OperatorJWT {
		t.Fatalf("a second load changed the setup: %v", err)
	}
}

// TestWriteNewRefusesAnExistingSetup: `notifier edge-setup` never replaces
// the keys of a deployment, and its accounts.conf names both accounts.
func TestWriteNewRefusesAnExistingSetup(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "edge")
	s, err := edgeauth.WriteNew(dir)
	if err != nil {
		t.Fatal(err)
	}
	conf, err := os.ReadFile(filepath.Join(dir, edgeauth.FileServerConf))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"system_account: " + s.SystemPub, s.SystemPub + ": \"" + s.SystemJWT, s.AppPub + ": \"" + s.AppJWT} {
		if !strings.Contains(string(conf), want) {
			t.Errorf("%s lacks %.60q", edgeauth.FileServerConf, want)
		}
	}
	for _, f := range []string{edgeauth.FileServiceCreds, edgeauth.FileGatewayCreds, edgeauth.FileWishlistCreds, edgeauth.FileSystemCreds, edgeauth.FileAppSeed, edgeauth.FileOperatorSigningSeed} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s: %v", f, err)
		} else if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, edgeauth.FileOperatorJWT))
	if _, err := edgeauth.WriteNew(dir); err == nil || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("second WriteNew: %v, want a refusal", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, edgeauth.FileOperatorJWT))
	if string(before) != string(after) {
		t.Fatal("the refused WriteNew replaced the operator")
	}
}
