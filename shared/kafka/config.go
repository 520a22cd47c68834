// Package kafka is the Kafka plumbing every service shares: client
// configuration (brokers, SASL/SCRAM, TLS), an idempotent producer, and a
// consumer-group runner that commits an offset only after the record's effect
// is durable, with a dead-letter path for records that can never succeed.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	"backinstock/shared/config"
)

// SASL mechanisms accepted in KAFKA_SASL_MECHANISM.
const (
	MechanismPlain  = "PLAIN"
	MechanismSHA256 = "SCRAM-SHA-256"
	MechanismSHA512 = "SCRAM-SHA-512"
)

// Config says how to reach the cluster.
type Config struct {
	Brokers  []string
	ClientID string

	SASLMechanism string // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	SASLUser      string
	SASLPassword  string

	TLS           bool
	TLSCAFile     string
	TLSCertFile   string
	TLSKeyFile    string
	TLSSkipVerify bool
}

// Bind registers the Kafka settings on a config set: KAFKA_BROKERS,
// KAFKA_SASL_MECHANISM, KAFKA_SASL_USER, KAFKA_SASL_PASSWORD, KAFKA_TLS,
// KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE, KAFKA_TLS_SKIP_VERIFY.
func (c *Config) Bind(s *config.Set) {
	s.List(&c.Brokers, "kafka-brokers", "KAFKA_BROKERS", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers")
	s.String(&c.SASLMechanism, "kafka-sasl-mechanism", "KAFKA_SASL_MECHANISM", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	s.String(&c.SASLUser, "kafka-sasl-user", "KAFKA_SASL_USER", "", "SASL user")
	s.String(&c.SASLPassword, "kafka-sasl-password", "KAFKA_SASL_PASSWORD", "", "SASL password")
	s.Bool(&c.TLS, "kafka-tls", "KAFKA_TLS", false, "connect to the brokers with TLS")
	s.String(&c.TLSCAFile, "kafka-tls-ca-file", "KAFKA_TLS_CA_FILE", "", "PEM CA bundle for the brokers' certificates")
	s.String(&c.TLSCertFile, "kafka-tls-cert-file", "KAFKA_TLS_CERT_FILE", "", "PEM client certificate (mTLS)")
	s.String(&c.TLSKeyFile, "kafka-tls-key-file", "KAFKA_TLS_KEY_FILE", "", "PEM client key (mTLS)")
	s.Bool(&c.TLSSkipVerify, "kafka-tls-skip-verify", "KAFKA_TLS_SKIP_VERIFY", false, "do not verify the brokers' certificates (testing only)")
}

// ConfigFromEnv reads the Kafka settings from the environment alone.
func ConfigFromEnv() (Config, error) {
	var c Config
	s := config.NewSet("kafka")
	c.Bind(s)
	if err := s.Parse(nil); err != nil {
		return c, err
	}
	return c, c.Validate()
}

// Validate names every setting that is wrong.
func (c Config) Validate() error {
	var p config.Problems
	if len(c.Brokers) == 0 {
		p.Addf("KAFKA_BROKERS", "at least one broker address is required")
	}
	for _, b := range c.Brokers {
		if !strings.Contains(b, ":") {
			p.Addf("KAFKA_BROKERS", "%q is not host:port", b)
		}
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
	case MechanismPlain, MechanismSHA256, MechanismSHA512:
		if c.SASLUser == "" {
			p.Addf("KAFKA_SASL_USER", "required with KAFKA_SASL_MECHANISM=%s", c.SASLMechanism)
		}
	default:
		p.Addf("KAFKA_SASL_MECHANISM", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.SASLMechanism)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		p.Addf("KAFKA_TLS_CERT_FILE", "client certificate and key go together")
	}
	return p.Err()
}

// Sarama builds the sarama configuration shared by producers, consumers and admins.
func (c Config) Sarama() (*sarama.Config, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.ClientID = c.ClientID
	if sc.ClientID == "" {
		sc.ClientID = "backinstock"
	}
	sc.Net.DialTimeout = 5 * time.Second
	sc.Metadata.Retry.Max = 5
	sc.Metadata.Retry.Backoff = 200 * time.Millisecond
	if m := strings.ToUpper(c.SASLMechanism); m != "" {
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.User = c.SASLUser
		sc.Net.SASL.Password = c.SASLPassword
		switch m {
		case MechanismPlain:
			sc.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case MechanismSHA256:
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
		case MechanismSHA512:
			sc.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
		}
	}
	if c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	return sc, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSSkipVerify} //nolint:gosec // opt-in, for tests
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: no PEM certificate in %s", c.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CERT_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// scramClient adapts xdg-go/scram to sarama's SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	c, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *scramClient) Done() bool                            { return s.conv.Done() }

// ErrAuth marks a connection refused for its credentials: retrying will not help.
var ErrAuth = errors.New("kafka authentication failed")

// NewClient connects and fetches metadata once, so a wrong password or an
// unreachable cluster is reported at start-up with a clear error.
func NewClient(c Config) (sarama.Client, error) {
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	return newClient(c, sc)
}

func newClient(c Config, sc *sarama.Config) (sarama.Client, error) {
	cl, err := sarama.NewClient(c.Brokers, sc)
	if err != nil {
		if isAuthError(err) || (sc.Net.SASL.Enable && reachableWithoutSASL(c.Brokers, sc)) {
			return nil, fmt.Errorf("%w: SASL %s as user %q to %s: %v", ErrAuth, c.SASLMechanism, c.SASLUser, strings.Join(c.Brokers, ","), err)
		}
		return nil, fmt.Errorf("connect to kafka %s: %w", strings.Join(c.Brokers, ","), err)
	}
	return cl, nil
}

func isAuthError(err error) bool {
	return errors.Is(err, sarama.ErrSASLAuthenticationFailed) ||
		errors.Is(err, sarama.ErrIllegalSASLState) ||
		errors.Is(err, sarama.ErrUnsupportedSASLMechanism) ||
		strings.Contains(err.Error(), "SASL")
}

// reachableWithoutSASL tells whether a broker answers an ApiVersions request
// (allowed before authentication). Some brokers answer bad credentials by
// closing the connection; when the broker is otherwise reachable, the
// credentials are what failed.
func reachableWithoutSASL(brokers []string, sc *sarama.Config) bool {
	probe := *sc
	probe.Net.SASL.Enable = false
	for _, addr := range brokers {
		b := sarama.NewBroker(addr)
		if err := b.Open(&probe); err != nil {
			continue
		}
		_, err := b.ApiVersions(&sarama.ApiVersionsRequest{})
		_ = b.Close()
		if err == nil {
			return true
		}
	}
	return false
}

// NewClusterAdmin returns an admin client over a connected client.
func NewClusterAdmin(c Config) (sarama.ClusterAdmin, error) {
	cl, err := NewClient(c)
	if err != nil {
		return nil, err
	}
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("kafka admin: %w", err)
	}
	return adm, nil
}

// Ping checks that the cluster answers metadata requests.
func Ping(ctx context.Context, cl sarama.Client) error {
	done := make(chan error, 1)
	go func() { done <- cl.RefreshMetadata() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
