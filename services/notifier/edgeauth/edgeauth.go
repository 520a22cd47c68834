// Package edgeauth is the trust setup of the NATS edge in decentralized JWT
// mode: an operator signs two accounts (the system account and the app
// account that holds the edge streams), the app account signs users. The
// notifier gets a service user that may publish; a browser or app gets a
// short-lived bearer user JWT that may only subscribe to its own subjects
// edge.*.*.<user_id> and may publish nothing, so it can read neither another
// shopper's notifications nor the JetStream API.
//
// The package has no dependency on nats-server, so the notifier binary can
// issue tokens without linking the server; edgeauth/edgeserver configures an
// embedded server from a Setup.
package edgeauth

import (
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
	FileSystemJWT    = "sys.jwt"
	FileSystemSeed   = "sys.nk"
	FileAppJWT       = "app.jwt"
	FileAppSeed      = "app.nk" // what the notifier's token endpoint needs (EDGE_ACCOUNT_SEED_FILE)
	FileServiceCreds = "notifier.creds"
)

// Setup is one operator with its system and app accounts.
type Setup struct {
	OperatorJWT string
	OperatorKP  nkeys.KeyPair
	SystemJWT   string
	SystemPub   string
	SystemKP    nkeys.KeyPair
	AppJWT      string
	AppPub      string
	AppKP       nkeys.KeyPair
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
// keys across restarts.
func LoadOrCreate(dir string) (*Setup, error) {
	if _, err := os.Stat(filepath.Join(dir, FileOperatorJWT)); err == nil {
		return Load(dir)
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
	sseed, _ := s.SystemKP.Seed()
	aseed, _ := s.AppKP.Seed()
	creds, err := s.ServiceCreds("notifier")
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{FileOperatorJWT, []byte(s.OperatorJWT), 0o644},
		{FileOperatorSeed, oseed, 0o600},
		{FileSystemJWT, []byte(s.SystemJWT), 0o644},
		{FileSystemSeed, sseed, 0o600},
		{FileAppJWT, []byte(s.AppJWT), 0o644},
		{FileAppSeed, aseed, 0o600},
		{FileServiceCreds, creds, 0o600},
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return nil
}

// Load reads a setup written by Write.
func Load(dir string) (*Setup, error) {
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
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s.SystemPub, _ = s.SystemKP.PublicKey()
	s.AppPub, _ = s.AppKP.PublicKey()
	return &s, nil
}

// ServiceCreds issues a creds file (user JWT and seed) for a backend service
// in the app account with full permissions: the notifier publishes to the
// edge and manages its streams.
func (s *Setup) ServiceCreds(name string) ([]byte, error) {
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return nil, fmt.Errorf("service user key: %w", err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = name
	uc.IssuerAccount = s.AppPub
	tok, err := uc.Encode(s.AppKP)
	if err != nil {
		return nil, fmt.Errorf("encode service user: %w", err)
	}
	seed, _ := ukp.Seed()
	return jwt.FormatUserConfig(tok, seed)
}

// Issuer signs browser user JWTs with the app account's key.
type Issuer struct {
	account nkeys.KeyPair
	pub     string
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
	return &Issuer{account: kp, pub: pub}, nil
}

// Issuer is the setup's token issuer.
func (s *Setup) Issuer() *Issuer {
	return &Issuer{account: s.AppKP, pub: s.AppPub}
}

// Token is an issued browser credential.
type Token struct {
	JWT     string
	Subject string
	Expires time.Time
}

// IssueUser returns a bearer user JWT for userID, valid for ttl: subscribe to
// edge.*.*.<user_id> only, publish nothing (not even replies), at most 16
// subscriptions. Bearer means the client presents the JWT alone (no nonce
// signature), as a browser that holds no NKey seed must.
func (i *Issuer) IssueUser(userID string, ttl time.Duration, now time.Time) (Token, error) {
	if !events.ValidID(userID) {
		return Token{}, fmt.Errorf("user_id must match %s", events.IDPattern)
	}
	ukp, err := nkeys.CreateUser()
	if err != nil {
		return Token{}, fmt.Errorf("user key: %w", err)
	}
	upub, _ := ukp.PublicKey()
	uc := jwt.NewUserClaims(upub)
	uc.Name = "edge-" + userID
	uc.BearerToken = true
	uc.IssuerAccount = i.pub
	uc.IssuedAt = now.Unix()
	exp := now.Add(ttl)
	uc.Expires = exp.Unix()
	sub := edge.UserFilter(userID)
	uc.Sub.Allow.Add(sub)
	uc.Pub.Deny.Add(">")
	uc.Limits.Subs = 16
	uc.AllowedConnectionTypes.Add(jwt.ConnectionTypeWebsocket, jwt.ConnectionTypeStandard)
	tok, err := uc.Encode(i.account)
	if err != nil {
		return Token{}, fmt.Errorf("encode user %s: %w", userID, err)
	}
	return Token{JWT: tok, Subject: sub, Expires: exp}, nil
}
