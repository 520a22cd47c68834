// Package edgeserver configures an embedded nats-server (tests, the local
// stack) to trust an edgeauth.Setup. It lives apart from edgeauth so the
// notifier binary, which only issues tokens, does not link nats-server.
package edgeserver

import (
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"

	"backinstock/services/notifier/edgeauth"
)

// Configure returns an options hook (e.g. testenv.NATSOptions.Configure) that
// turns on operator mode: trusted operator, system account, and a memory
// resolver preloaded with both account JWTs.
func Configure(s *edgeauth.Setup) (func(*server.Options), error) {
	oc, err := jwt.DecodeOperatorClaims(s.OperatorJWT)
	if err != nil {
		return nil, fmt.Errorf("decode operator: %w", err)
	}
	res := &server.MemAccResolver{}
	if err := res.Store(s.SystemPub, s.SystemJWT); err != nil {
		return nil, fmt.Errorf("store system account: %w", err)
	}
	if err := res.Store(s.AppPub, s.AppJWT); err != nil {
		return nil, fmt.Errorf("store app account: %w", err)
	}
	return func(o *server.Options) {
		o.TrustedOperators = []*jwt.OperatorClaims{oc}
		o.SystemAccount = s.SystemPub
		o.AccountResolver = res
	}, nil
}
