// Package edgeserver configures an embedded nats-server (tests, the local
// stack) to trust an edgeauth.Setup. It lives apart from edgeauth so the
// notifier binary, which only issues tokens, does not link nats-server.
package edgeserver

import (
	"fmt"
	"os"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"backinstock/services/notifier/edgeauth"
)

// Configure returns an options hook (e.g. testenv.NATSOptions.Configure) that
// turns on operator mode: trusted operator, system account, and the full
// directory resolver in resolverDir, preloaded with both account JWTs.
//
// The full resolver, not the memory one, because it is what revocations
// need: it answers account lookups (the revocation path reads the current
// app account from the server), accepts signed updates on
// $SYS.REQ.CLAIMS.UPDATE, keeps them on disk across restarts and spreads
// them to the other servers of a cluster. It is what a deployment's
// nats.conf names `resolver: {type: full}`. The preload never replaces a
// stored JWT as new as the setup's or newer (one that carries revocations).
func Configure(s *edgeauth.Setup, resolverDir string) (func(*server.Options), error) {
	oc, err := jwt.DecodeOperatorClaims(s.OperatorJWT)
	if err != nil {
		return nil, fmt.Errorf("decode operator: %w", err)
	}
	if err := os.MkdirAll(resolverDir, 0o700); err != nil {
		return nil, fmt.Errorf("account resolver dir: %w", err)
	}
	// A resolver belongs to one server run (the server closes it on
	// shutdown), so every start, a restart included, opens its own.
	open := func() (*server.DirAccResolver, error) {
		res, err := server.NewDirAccResolver(resolverDir, 0, 2*time.Minute, server.NoDelete)
		if err != nil {
			return nil, fmt.Errorf("account resolver %s: %w", resolverDir, err)
		}
		for _, acc := range []struct{ pub, jwt string }{{s.SystemPub, s.SystemJWT}, {s.AppPub, s.AppJWT}} {
			if err := preload(res, acc.pub, acc.jwt); err != nil {
				res.Close()
				return nil, fmt.Errorf("preload account %s: %w", acc.pub, err)
			}
		}
		return res, nil
	}
	// Open once here so a bad directory is an error now, not a server that
	// refuses to start later.
	res, err := open()
	if err != nil {
		return nil, err
	}
	res.Close()
	return func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{oc}
		o.SystemAccount = s.SystemPub
		if res, err := open(); err == nil {
			o.AccountResolver = res
		}
		// else: no resolver, and nats-server refuses to start in operator
		// mode without one, naming it.
	}, nil
}

// preload stores the setup's JWT unless the resolver holds one issued in the
// same second or later: the resolver's own Store would replace one of the
// same second, and an update pushed within a second of the setup (a test, a
// first start) would be lost on the next restart.
func preload(res *server.DirAccResolver, pub, token string) error {
	if stored, err := res.LoadAcc(pub); err == nil && stored != "" {
		have, err1 := jwt.DecodeGeneric(stored)
		setup, err2 := jwt.DecodeGeneric(token)
		if err1 == nil && err2 == nil && have.IssuedAt >= setup.IssuedAt {
			return nil
		}
	}
	return res.Store(pub, token)
}
