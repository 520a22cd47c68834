package app

import (
	"fmt"
	"io"

	"backinstock/services/notifier/edgeauth"
	"backinstock/shared/config"
)

// EdgeSetupConfig is the configuration of `notifier edge-setup`.
type EdgeSetupConfig struct {
	Dir string
}

// Bind registers the settings on s.
func (c *EdgeSetupConfig) Bind(s *config.Set) {
	s.String(&c.Dir, "dir", "EDGE_SETUP_DIR", "", "directory to write the edge's operator, accounts and credentials into (must hold no setup yet)")
}

// Validate checks the settings.
func (c *EdgeSetupConfig) Validate() error {
	var p config.Problems
	if c.Dir == "" {
		p.Addf("EDGE_SETUP_DIR", "required (--dir)")
	}
	return p.Err()
}

// EdgeSetup writes a fresh edge trust setup into cfg.Dir and says which file
// goes where: the NATS servers' files and the services' credentials are
// separate Secrets, so a service never holds the operator's identity key.
func EdgeSetup(cfg EdgeSetupConfig, out io.Writer) error {
	s, err := edgeauth.WriteNew(cfg.Dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `edge setup written to %s (operator %s, system account %s, app account %s)

NATS servers (Secret nats-edge, mounted at /etc/nats/edge):
  %-20s the trusted operator (nats.conf: operator)
  %-20s system_account and resolver_preload (nats.conf: include)
notifier (Secret backinstock-edge, mounted at /etc/backinstock/edge):
  %-20s NATS_CREDS: the service user of the app account
  %-20s EDGE_ACCOUNT_SEED_FILE: signs browser tokens
  %-20s EDGE_SYSTEM_CREDS: the per-user connection limit
  %-20s EDGE_OPERATOR_SEED_FILE: re-signs the app account with revocations
gateway (Secret backinstock-gateway-edge):
  %-20s NATS_CREDS of the gateway
wishlist API (Secret backinstock-wishlist-edge):
  %-20s NATS_CREDS of the wishlist (export and erasure of a user's edge messages)
keep offline, never mounted: %s (the operator's identity key) and %s
(the system account's key): with them the accounts can be re-signed.
`, cfg.Dir, pub(s.OperatorKP), s.SystemPub, s.AppPub,
		edgeauth.FileOperatorJWT, edgeauth.FileServerConf,
		edgeauth.FileServiceCreds, edgeauth.FileAppSeed, edgeauth.FileSystemCreds, edgeauth.FileOperatorSigningSeed,
		edgeauth.FileGatewayCreds,
		edgeauth.FileWishlistCreds,
		edgeauth.FileOperatorSeed, edgeauth.FileSystemSeed)
	return nil
}

func pub(kp interface{ PublicKey() (string, error) }) string {
	k, _ := kp.PublicKey()
	return k
}
