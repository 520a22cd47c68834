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
	"slices"
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

	// Compression is the producers' codec (KAFKA_COMPRESSION, one of
	// Compressions); empty is DefaultCompression.
	Compression string

	// Start is where a consumer group with no committed offset begins
	// (KAFKA_START, one of Starts); empty is DefaultStart. A group that
	// has committed resumes from its commit whatever Start says.
	Start string
	// FetchMaxBytes bounds a fetch response over all its partitions
	// (KAFKA_FETCH_MAX_BYTES, Kafka's fetch.max.bytes); zero is
	// DefaultFetchMaxBytes.
	FetchMaxBytes int
	// FetchPartitionMaxBytes is how much one partition may return per
	// fetch (KAFKA_FETCH_PARTITION_MAX_BYTES, Kafka's
	// max.partition.fetch.bytes); zero is DefaultFetchPartitionMaxBytes.
	FetchPartitionMaxBytes int
}

// Starts are the values KAFKA_START accepts.
var Starts = []string{StartEarliest, StartLatest}

// Start positions of a new consumer group.
const (
	StartEarliest = "earliest" // the oldest record still retained
	StartLatest   = "latest"   // only records produced after the group first joins
)

// DefaultStart is earliest: a new region's group (or a group whose commits
// expired) must not skip restocks that were produced before it started.
const DefaultStart = StartEarliest

// Fetch sizes. The per-partition default is sarama's (and Java's) 1 MiB,
// on purpose: a fetch response stays on the heap while any of its records
// waits in a batch or a channel. With 4 MiB per partition and 1,024-record
// channels the notifier held ~400 MB live on a backlog, its heap goal swung
// with it, and the scavenger kept returning memory that was faulted back in:
// a fifth of its CPU went to page faults. The total default is Java's
// fetch.max.bytes.
const (
	DefaultFetchMaxBytes          = 50 << 20
	DefaultFetchPartitionMaxBytes = 1 << 20
	// MaxFetchBytes caps both: sarama refuses any response over
	// sarama.MaxResponseSize (100 MiB), and a broker may return one record
	// batch beyond the limit to make progress.
	MaxFetchBytes = 50 << 20
)

// Compressions are the codecs KAFKA_COMPRESSION accepts. Consumers must
// read the chosen one: kafkajs reads only gzip without an extra codec
// package, librdkafka-based and Java clients read them all.
var Compressions = []string{"none", "gzip", "snappy", "lz4", "zstd"}

// DefaultCompression is lz4: the fastest of them for our small JSON
// records at a ratio close to zstd's (docs/benchmarks.md).
const DefaultCompression = "lz4"

// codec is c.Compression as sarama's codec.
func (c Config) codec() (sarama.CompressionCodec, error) {
	name := c.Compression
	if name == "" {
		name = DefaultCompression
	}
	var codec sarama.CompressionCodec
	if err := codec.UnmarshalText([]byte(name)); err != nil || !slices.Contains(Compressions, name) {
		return 0, fmt.Errorf("%q is not one of %s", c.Compression, strings.Join(Compressions, ", "))
	}
	return codec, nil
}

// Bind registers the Kafka settings on a config set: KAFKA_BROKERS,
// KAFKA_SASL_MECHANISM, KAFKA_SASL_USER, KAFKA_SASL_PASSWORD, KAFKA_TLS,
// KAFKA_TLS_CA_FILE, KAFKA_TLS_CERT_FILE, KAFKA_TLS_KEY_FILE, KAFKA_TLS_SKIP_VERIFY,
// KAFKA_COMPRESSION, KAFKA_START, KAFKA_FETCH_MAX_BYTES,
// KAFKA_FETCH_PARTITION_MAX_BYTES.
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
	s.String(&c.Compression, "kafka-compression", "KAFKA_COMPRESSION", DefaultCompression, "producer compression: "+strings.Join(Compressions, ", ")+" (consumers must support it: kafkajs reads only gzip without a codec package)")
	s.String(&c.Start, "kafka-start", "KAFKA_START", DefaultStart, "where a consumer group with no committed offset starts: "+strings.Join(Starts, " or ")+" (a group that has committed resumes from its commit)")
	s.Int(&c.FetchMaxBytes, "kafka-fetch-max-bytes", "KAFKA_FETCH_MAX_BYTES", DefaultFetchMaxBytes, "most bytes one fetch response carries over all its partitions (Kafka's fetch.max.bytes)")
	s.Int(&c.FetchPartitionMaxBytes, "kafka-fetch-partition-max-bytes", "KAFKA_FETCH_PARTITION_MAX_BYTES", DefaultFetchPartitionMaxBytes, "most bytes one partition returns per fetch (Kafka's max.partition.fetch.bytes); a larger record batch is still fetched whole")
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
	if _, err := c.codec(); err != nil {
		p.Addf("KAFKA_COMPRESSION", "%v", err)
	}
	if c.Start != "" && !slices.Contains(Starts, c.Start) {
		p.Addf("KAFKA_START", "%q is not one of %s", c.Start, strings.Join(Starts, ", "))
	}
	for _, f := range []struct {
		key    string
		v, def int
	}{{"KAFKA_FETCH_MAX_BYTES", c.FetchMaxBytes, DefaultFetchMaxBytes}, {"KAFKA_FETCH_PARTITION_MAX_BYTES", c.FetchPartitionMaxBytes, DefaultFetchPartitionMaxBytes}} {
		if f.v < 0 || f.v > MaxFetchBytes {
			p.Addf(f.key, "%d is out of range: 1 to %d bytes (0 takes the default, %d)", f.v, MaxFetchBytes, f.def)
		}
	}
	if total, part := c.fetchSizes(); part > total {
		p.Addf("KAFKA_FETCH_PARTITION_MAX_BYTES", "%d is more than KAFKA_FETCH_MAX_BYTES (%d), the bound of the whole fetch", part, total)
	}
	return p.Err()
}

// fetchSizes are the fetch limits with zero taken as the default.
func (c Config) fetchSizes() (total, partition int) {
	total, partition = c.FetchMaxBytes, c.FetchPartitionMaxBytes
	config.Default(&total, DefaultFetchMaxBytes)
	config.Default(&partition, DefaultFetchPartitionMaxBytes)
	return total, partition
}

// consumerSettings applies the start position and fetch sizes: every
// consumer of the process (groups and partition readers) is built from
// Sarama, so each one honours them.
func (c Config) consumerSettings(sc *sarama.Config) {
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	if c.Start == StartLatest {
		sc.Consumer.Offsets.Initial = sarama.OffsetNewest
	}
	total, partition := c.fetchSizes()
	sc.Consumer.Fetch.MaxBytes = int32(total)    //nolint:gosec // Validate bounds it by MaxFetchBytes
	sc.Consumer.Fetch.Default = int32(partition) //nolint:gosec // the same
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
	c.consumerSettings(sc)
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

// NewClientWith is NewClient with tune applied to the sarama configuration
// first: for a one-off reader whose fetches should not wait out sarama's
// defaults (topics deadletter reads partitions to their end, and each read
// ends on a fetch the broker holds for Consumer.MaxWaitTime).
func NewClientWith(c Config, tune func(*sarama.Config)) (sarama.Client, error) {
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	tune(sc)
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
