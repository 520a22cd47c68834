// Package edgeauth is the trust setup of the NATS edge in decentralized JWT
// mode: an operator signs two accounts (the system account and the app
// account that holds the edge streams), the app account signs users. The
// notifier gets a service user that may publish; a browser or app gets a
// short-lived bearer user JWT that may only subscribe to its own subjects
// edge.*.*.<user_id>, publish nothing and connect over websocket only, so it
// can read neither another shopper's notifications nor the JetStream API.
//
// Every token of one user_id carries the same user public key (derived from
// the account seed), so one entry in the app account's revocation list
// (RevokeUser) ends all of that user's tokens issued up to a moment, and the
// connection guard can count a user's connections by that key.
//
// The package has no dependency on nats-server, so the notifier binary can
// issue tokens without linking the server; edgeauth/edgeserver configures an
// embedded server from a Setup.
package edgeauth

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"backinstock/topics/edge"
	"backinstock/topics/events"
)

// Files in a setup directory.
const (
	FileOperatorJWT  = "operator.jwt"
	FileOperatorSeed = "operator.nk"
	// FileOperatorSigningSeed is the operator signing key that re-signs the
	// app account with its revocations (EDGE_OPERATOR_SEED_FILE): a key the
	// operator can rotate, unlike its identity key.
	FileOperatorSigningSeed = "operator-signing.nk"
	FileSystemJWT           = "sys.jwt"
	FileSystemSeed          = "sys.nk"
	FileAppJWT              = "app.jwt"
	FileAppSeed             = "app.nk" // what the notifier's token endpoint needs (EDGE_ACCOUNT_SEED_FILE)
	FileServiceCreds        = "notifier.creds"
	// FileGatewayCreds is the gateway's service user (NATS_CREDS of
	// `gateway`): it reads the edge streams of the same app account.
	FileGatewayCreds = "gateway.creds"
	// FileWishlistCreds is the wishlist API's service user (NATS_CREDS of
	// `wishlist serve`): its export reads and its erasure purges a user's
	// messages in the edge streams.
	FileWishlistCreds = "wishlist.creds"
	// FileServerConf is the nats.conf fragment a deployment's NATS
	// includes: the system account and the resolver preload of both
	// account JWTs (deploy/compose/nats.conf, the k8s nats ConfigMap).
	FileServerConf = "accounts.conf"
	// FileSystemCreds is a system-account user (EDGE_SYSTEM_CREDS): the
	// connection guard reads connect events and kicks with it, and the
	// revocation path pushes the account update.
	FileSystemCreds = "system.creds"
)

// EdgeUserTag marks browser tokens (JWT tags are lower case): the connection
// guard counts only connections that carry it, not the services' own.
const EdgeUserTag = "backinstock-edge-user"

// Setup is one operator with its system and app accounts.
type Setup struct {
	OperatorJWT string
	OperatorKP  nkeys.KeyPair
	// OperatorSigningKP is listed in the operator JWT's signing keys: it
	// signs account updates (revocations).
	OperatorSigningKP nkeys.KeyPair
	SystemJWT         string
	SystemPub         string
	SystemKP          nkeys.KeyPair
	AppJWT            string
	AppPub            string
	AppKP             nkeys.KeyPair
}

// Generate creates a fresh development setup. The app account has JetStream
// enabled without limits (the edge streams live there).
func Generate() (*Setup, error) {
	okp, err := nkeys.CreateOperator()
	if err != nil {
		return nil, fmt.Errorf("operator key: %w", err)
	}
	opub, _ := okp.PublicKey()
	oc := jwt.NewOperatorClaims(opub)
	oc.Name = "backinstock"
	s := &Setup{OperatorKP: okp}
	if s.OperatorSigningKP, err = nkeys.CreateOperator(); err != nil {
		return nil, fmt.Errorf("operator signing key: %w", err)
	}
	spk, _ := s.OperatorSigningKP.PublicKey()
	oc.SigningKeys.Add(spk)

	skp, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("system account key: %w", err)
	}
	s.SystemKP = skp
	s.SystemPub, _ = skp.PublicKey()
	oc.SystemAccount = s.SystemPub
	if s.OperatorJWT, err = oc.Encode(okp); err != nil {
		return nil, fmt.Errorf("encode operator: %w", err)
	}
	sc := jwt.NewAccountClaims(s.SystemPub)
	sc.Name = "SYS"
	if s.SystemJWT, err = sc.Encode(okp); err != nil {
		return nil, fmt.Errorf("encode system account: %w", err)
	}

	akp, err := nkeys.CreateAccount()
	if err != nil {
		return nil, fmt.Errorf("app account key: %w", err)
	}
	s.AppKP = akp
	s.AppPub, _ = akp.PublicKey()
	ac := jwt.NewAccountClaims(s.AppPub)
	ac.Name = "APP"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1, MaxAckPending: -1}
	if s.AppJWT, err = ac.Encode(okp); err != nil {
		return nil, fmt.Errorf("encode app account: %w", err)
	}
	return s, nil
}

// LoadOrCreate reads the setup in dir, generating and writing one (seeds with
// mode 0600) when the directory holds none, so a local stack keeps the same
// keys across restarts. A setup written before the operator signing key and
// the system creds existed gets them added.
func LoadOrCreate(dir string) (*Setup, error) {
	if _, err := os.Stat(filepath.Join(dir, FileOperatorJWT)); err == nil {
		return upgrade(dir)
	}
	s, err := Generate()
	if err != nil {
		return nil, err
	}
	if err := s.Write(dir); err != nil {
		return nil, err
	}
	return s, nil
}

// Write stores the setup and a notifier service creds file in dir.
func (s *Setup) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("edge auth dir: %w", err)
	}
	oseed, _ := s.OperatorKP.Seed()
	osseed, _ := s.OperatorSigningKP.Seed()
	sseed, _ := s.SystemKP.Seed()
	aseed, _ := s.AppKP.Seed()
	creds, err := s.ServiceCreds("notifier")
	if err != nil {
		return err
	}
	sysCreds, err := s.SystemCreds("edge-guard")
	if err != nil {
		return err
	}
	gwCreds, err := s.ServiceCreds("gateway")
	if err != nil {
		return err
	}
	wlCreds, err := s.ServiceCreds("wishlist")
	if err != nil {
		return err
	}
	return writeFiles(dir, []file{
		{FileOperatorJWT, []byte(s.OperatorJWT), 0o644},
		{FileOperatorSeed, oseed, 0o600},
		{FileOperatorSigningSeed, osseed, 0o600},
		{FileSystemJWT, []byte(s.SystemJWT), 0o644},
		{FileSystemSeed, sseed, 0o600},
		{FileAppJWT, []byte(s.AppJWT), 0o644},
		{FileAppSeed, aseed, 0o600},
		{FileServiceCreds, creds, 0o600},
		{FileSystemCreds, sysCreds, 0o600},
		{FileGatewayCreds, gwCreds, 0o600},
		{FileWishlistCreds, wlCreds, 0o600},
		// Public JWTs only, but a NATS container reads it as another user.
		{FileServerConf, s.ServerConfig(), 0o644},
	})
}

// ServerConfig is the nats.conf fragment that makes a nats-server trust the
// setup once the main configuration names the operator JWT (`operator:`)
// and the full resolver: the system account and both account JWTs as the
// resolver's preload. The preload seeds an empty resolver directory; the
// full resolver keeps a newer JWT it stores (one carrying revocations)
// over it across restarts.
func (s *Setup) ServerConfig() []byte {
	var b strings.Builder
	b.WriteString("# Written by `notifier edge-setup` (backinstock edgeauth): include it from\n")
	b.WriteString("# nats.conf next to `operator: <path to operator.jwt>` and a full resolver.\n")
	fmt.Fprintf(&b, "system_account: %s\n", s.SystemPub)
	b.WriteString("resolver_preload: {\n")
	fmt.Fprintf(&b, "  %s: %q\n", s.SystemPub, s.SystemJWT)
	fmt.Fprintf(&b, "  %s: %q\n", s.AppPub, s.AppJWT)
	b.WriteString("}\n")
	return []byte(b.String())
}

// WriteNew writes a fresh setup into dir, which must not hold one already:
// replacing the keys of a running deployment would lock out every service
// and browser until all of them get the new files.
func WriteNew(dir string) (*Setup, error) {
	if _, err := os.Stat(filepath.Join(dir, FileOperatorJWT)); err == nil {
		return nil, fmt.Errorf("%s already holds an edge setup (%s): keep it, or move it away to start over", dir, FileOperatorJWT)
	}
	s, err := Generate()
	if err != nil {
		return nil, err
	}
	if err := s.Write(dir); err != nil {
		return nil, err
	}
	return s, nil
}

type file struct {
	name string
	data []byte
	mode os.FileMode
}

func writeFiles(dir string, files []file) error {
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}

// upgrade loads dir and adds what an older setup lacks: the operator signing
// key (the operator JWT is re-signed to list it) and the system creds.
func upgrade(dir string) (*Setup, error) {
	_, err := os.Stat(filepath.Join(dir, FileOperatorSigningSeed))
	if errors.Is(err, os.ErrNotExist) {
		s, err := load(dir, false)
		if err != nil {
			return nil, err
		}
		if s.OperatorSigningKP, err = nkeys.CreateOperator(); err != nil {
			return nil, fmt.Errorf("operator signing key: %w", err)
		}
		oc, err := jwt.DecodeOperatorClaims(s.OperatorJWT)
		if err != nil {
			return nil, fmt.Errorf("edge auth %s: %w", FileOperatorJWT, err)
		}
		spk, _ := s.OperatorSigningKP.PublicKey()
		oc.SigningKeys.Add(spk)
		if s.OperatorJWT, err = oc.Encode(s.OperatorKP); err != nil {
			return nil, fmt.Errorf("encode operator: %w", err)
		}
		seed, _ := s.OperatorSigningKP.Seed()
		// The seed first: a crash between the two leaves a key the operator
		// JWT does not list yet, which the next start adds again.
		if err := writeFiles(dir, []file{{FileOperatorSigningSeed, seed, 0o600}, {FileOperatorJWT, []byte(s.OperatorJWT), 0o644}}); err != nil {
			return nil, err
		}
	}
	s, err := Load(dir)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dir, FileSystemCreds)); errors.Is(err, os.ErrNotExist) {
		creds, err := s.SystemCreds("edge-guard")
		if err != nil {
			return nil, err
		}
		if err := writeFiles(dir, []file{{FileSystemCreds, creds, 0o600}}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Load reads a setup written by Write.
func Load(dir string) (*Setup, error) { return load(dir, true) }

func load(dir string, signingKey bool) (*Setup, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("read edge auth %s: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	kp := func(name string) (nkeys.KeyPair, error) {
		seed, err := read(name)
		if err != nil {
			return nil, err
		}
		k, err := nkeys.FromSeed([]byte(seed))
		if err != nil {
			return nil, fmt.Errorf("edge auth %s: %w", name, err)
		}
		return k, nil
	}
	var s Setup
	var errs []error
	var err error
	s.OperatorJWT, err = read(FileOperatorJWT)
	errs = append(errs, err)
	s.SystemJWT, err = read(FileSystemJWT)
	errs = append(errs, err)
	s.AppJWT, err = read(FileAppJWT)
	errs = append(errs, err)
	s.OperatorKP, err = kp(FileOperatorSeed)
	errs = append(errs, err)
	s.SystemKP, err = kp(FileSystemSeed)
	errs = append(errs, err)
	s.AppKP, err = kp(FileAppSeed)
	errs = append(errs, err)
	if signingKey {
		s.OperatorSigningKP, err = kp(FileOperatorSigningSeed)
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.SystemPub, _ = s.SystemKP.PublicKey()
	s.AppPub, _ = s.AppKP.PublicKey()
	return &s, nil
}

// ServiceCreds issues a creds file (user JWT and seed) for a backend service
// in the app account with full permissions: the notifier publishes to the
// edge and manages its streams. It connects on the plain NATS port only.
func (s *Setup) ServiceCreds(name string) ([]byte, error) {
	return userCreds(name, s.AppKP)
}

// SystemCreds issues a creds file for a user of the system account: it sees
// connect events, connection lists and account lookups, kicks connections
// and pushes account updates, all on the plain NATS port.
func (s *Setup) SystemCreds(name string) ([]byte, error) {
	return userCreds(name, s.SystemKP)
}

func userCreds(name string, account nkeys.KeyPair) ([]byte, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("user key %s: %w", name, err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeStandard)
	tok, err := uc.Encode(account)
	if err != nil {
		return nil, fmt.Errorf("encode user %s: %w", name, err)
	}
	seed, _ := ukp.Seed()
	return jwt.FormatUserConfig(tok, seed)
}

// Issuer signs browser user JWTs with the app account's key.
type Issuer struct {
	account nkeys.KeyPair
	pub     string
	seed    []byte // keys the per-user key derivation
}

// NewIssuer builds an issuer from the app account seed.
func NewIssuer(accountSeed []byte) (*Issuer, error) {
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(string(accountSeed))))
	if err != nil {
		return nil, fmt.Errorf("edge account seed: %w", err)
	}
	pub, err := kp.PublicKey()
	if err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		return nil, errors.New("edge account seed: not an account seed")
	}
	seed, _ := kp.Seed()
	return &Issuer{account: kp, pub: pub, seed: seed}, nil
}

// Issuer is the setup's token issuer.
func (s *Setup) Issuer() *Issuer {
	seed, _ := s.AppKP.Seed()
	return &Issuer{account: s.AppKP, pub: s.AppPub, seed: seed}
}

// Account is the public key of the account the issuer signs for.
func (i *Issuer) Account() string { return i.pub }

// UserKey is the public key every token of userID carries: an HMAC of the
// user id under the account seed, so every notifier replica holding the
// seed derives the same key and nobody without it can. Its seed signs
// nothing (the tokens are bearer tokens); the key exists to be revoked and
// counted.
func (i *Issuer) UserKey(userID string) (string, error) {
	if !events.ValidID(userID) {
		return "", fmt.Errorf("user_id must match %s", events.IDPattern)
	}
	mac := hmac.New(sha256.New, i.seed)
	mac.Write([]byte("backinstock edge user\x00" + userID))
	kp, err := nkeys.FromRawSeed(nkeys.PrefixByteUser, mac.Sum(nil))
	if err != nil {
		return "", fmt.Errorf("user key %s: %w", userID, err)
	}
	return kp.PublicKey()
}

// Token is an issued browser credential.
type Token struct {
	JWT     string
	Subject string
	Expires time.Time
}

// IssueUser returns a bearer user JWT for userID, valid for ttl: subscribe to
// edge.*.*.<user_id> only, publish nothing (not even replies), at most 16
// subscriptions, websocket connections only (the plain NATS port is for the
// services). Bearer means the client presents the JWT alone (no nonce
// signature), as a browser that holds no NKey seed must.
func (i *Issuer) IssueUser(userID string, ttl time.Duration, now time.Time) (Token, error) {
	upub, err := i.UserKey(userID)
	if err != nil {
		return Token{}, err
	}
	uc := jwt.NewUserClaims(upub)
	uc.Name = userNamePrefix + userID
	uc.Tags.Add(EdgeUserTag)
	uc.BearerToken = true
	uc.IssuerAccount = i.pub
	// The issue time (iat) is the clock's at signing (jwt sets it in
	// Encode): revocations compare against it.
	exp := now.Add(ttl)
	uc.Expires = exp.Unix()
	sub := edge.UserFilter(userID)
	uc.Sub.Allow.Add(sub)
	uc.Pub.Deny.Add(">")
	uc.Limits.Subs = 16
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeWebsocket)
	tok, err := uc.Encode(i.account)
	if err != nil {
		return Token{}, fmt.Errorf("encode user %s: %w", userID, err)
	}
	return Token{JWT: tok, Subject: sub, Expires: exp}, nil
}

// userNamePrefix starts the name of every browser user JWT.
const userNamePrefix = "edge-"

// UserIDFromName is the user id of a browser token's name ("edge-<user_id>"),
// as connect events and connection lists report it (name_tag).
func UserIDFromName(name string) (string, bool) {
	id, ok := strings.CutPrefix(name, userNamePrefix)
	return id, ok && events.ValidID(id)
}

// RevokeUser returns accountJWT re-signed by signer (the operator or one of
// its signing keys) with every token of userKey issued at or before at
// revoked. Revocations older than forgetBefore are dropped: pass now minus
// the longest token lifetime, since a token issued before such an entry
// has expired, so the list stays as small as the revocations of one token
// lifetime. Everything else in the account (limits, JetStream, signing
// keys) is kept as it is.
func RevokeUser(accountJWT string, signer nkeys.KeyPair, userKey string, at, forgetBefore time.Time) (string, error) {
	if !nkeys.IsValidPublicUserKey(userKey) {
		return "", fmt.Errorf("revoke: %q is not a user public key", userKey)
	}
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return "", fmt.Errorf("revoke: decode account: %w", err)
	}
	for k, ts := range ac.Revocations {
		if k != jwt.All && ts < forgetBefore.Unix() {
			delete(ac.Revocations, k)
		}
	}
	ac.RevokeAt(userKey, at)
	out, err := ac.Encode(signer)
	if err != nil {
		return "", fmt.Errorf("revoke: encode account %s: %w", ac.Subject, err)
	}
	return out, nil
}
