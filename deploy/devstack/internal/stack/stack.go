// Package stack is the embedded local stack behind `make demo`: a kfake Kafka
// cluster, an embedded nats-server with JetStream and websocket, and Redis
// (redis-server from PATH, supervised, else an embedded Go Redis), and a
// Mailpit for the gateways' email, with the topic catalogue applied. It starts only servers it owns: a port in use is
// an error naming the flag that moves it. Every address is written to
// <data-dir>/devstack.env so scripts can source it.
package stack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"backinstock/services/notifier/edgeauth"
	"backinstock/services/notifier/edgeauth/edgeserver"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// Config chooses where the stack keeps its state and which ports it uses.
// The defaults stay clear of the standard ports (9092, 4222, 6379), which a
// developer machine often has taken by system services.
type Config struct {
	DataDir    string
	KafkaPorts []string
	NATSPort   int
	NATSWSPort int
	RedisPort  int
	// MailpitSMTPPort and MailpitPort (its web UI and API) are the local
	// Mailpit's, where the gateways send email.
	MailpitSMTPPort int
	MailpitPort     int
	APIToken        string
	InfraOnly       bool
	// HTTPPortBase: the demo page listens on it, inventory on +1, the
	// wishlist API on +2, fan-out workers on +10.., notifiers on +20..,
	// gateways on +30...
	HTTPPortBase int
	Regions      []string
}

// Bind registers the settings.
func (c *Config) Bind(s *config.Set) {
	s.String(&c.DataDir, "data-dir", "DEVSTACK_DATA_DIR", ".data", "directory for the stack's state")
	s.List(&c.KafkaPorts, "kafka-ports", "DEVSTACK_KAFKA_PORTS", []string{"19092", "19093", "19094"}, "ports of the 3 Kafka brokers")
	s.Int(&c.NATSPort, "nats-port", "DEVSTACK_NATS_PORT", 14222, "NATS client port")
	s.Int(&c.NATSWSPort, "nats-ws-port", "DEVSTACK_NATS_WS_PORT", 14280, "NATS websocket port")
	s.Int(&c.RedisPort, "redis-port", "DEVSTACK_REDIS_PORT", 16379, "Redis port")
	s.Int(&c.MailpitSMTPPort, "mailpit-smtp-port", "DEVSTACK_MAILPIT_SMTP_PORT", 11025, "Mailpit SMTP port (the gateways' email goes there)")
	s.Int(&c.MailpitPort, "mailpit-port", "DEVSTACK_MAILPIT_PORT", 18025, "Mailpit web UI and API port (MAILPIT_URL)")
	s.String(&c.APIToken, "api-token", "API_TOKEN", "", "API token (default: generated once and kept in the data dir)")
	s.Int(&c.HTTPPortBase, "http-port-base", "DEVSTACK_HTTP_PORT_BASE", 18080, "demo page port; services take the ports above it")
	s.Bool(&c.InfraOnly, "infra-only", "DEVSTACK_INFRA_ONLY", false, "run Kafka, NATS and Redis only, no services")
	s.List(&c.Regions, "regions", "REGIONS", catalog.DefaultRegions, "regions to run fan-out groups and notifiers for")
}

// Validate names what is wrong.
func (c Config) Validate() error {
	var p config.Problems
	if c.DataDir == "" {
		p.Addf("--data-dir", "required")
	}
	if len(c.KafkaPorts) < 1 {
		p.Addf("--kafka-ports", "at least one port")
	}
	for _, port := range c.KafkaPorts {
		var n int
		if _, err := fmt.Sscanf(port, "%d", &n); err != nil || n <= 0 || n > 65535 {
			p.Addf("--kafka-ports", "%q is not a port", port)
		}
	}
	if !c.InfraOnly && (c.HTTPPortBase <= 0 || c.HTTPPortBase > 65500) {
		p.Addf("--http-port-base", "%d is not a port with 40 free above it", c.HTTPPortBase)
	}
	for name, port := range map[string]int{"--nats-port": c.NATSPort, "--nats-ws-port": c.NATSWSPort, "--redis-port": c.RedisPort,
		"--mailpit-smtp-port": c.MailpitSMTPPort, "--mailpit-port": c.MailpitPort} {
		if port <= 0 || port > 65535 {
			p.Addf(name, "%d is not a port", port)
		}
	}
	return p.Err()
}

// Infra is the running infrastructure.
type Infra struct {
	Kafka   *testenv.Kafka
	NATS    *testenv.NATS
	Mailpit *testenv.Mailpit
	redis   interface{ Close() }
	Env     Env
}

// checkPorts refuses to start when any infrastructure port is taken.
func checkPorts(cfg Config, kafkaPorts []int) error {
	var errs []error
	for _, p := range kafkaPorts {
		errs = append(errs, checkPortFree(p, "--kafka-ports"))
	}
	errs = append(errs, checkPortFree(cfg.NATSPort, "--nats-port"), checkPortFree(cfg.NATSWSPort, "--nats-ws-port"),
		checkPortFree(cfg.RedisPort, "--redis-port"), checkPortFree(cfg.MailpitSMTPPort, "--mailpit-smtp-port"),
		checkPortFree(cfg.MailpitPort, "--mailpit-port"))
	return errors.Join(errs...)
}

// Env is what devstack.env holds.
type Env struct {
	KafkaBrokers string
	RedisURL     string
	NATSURL      string
	NATSWSURL    string
	APIToken     string
	// NATSCreds is the service user's creds file; EdgeAccountSeedFile signs browser tokens.
	NATSCreds           string
	EdgeAccountSeedFile string
	// EdgeSystemCreds (a system-account user) and EdgeOperatorSeedFile (the
	// operator signing key) let the notifiers limit each user's connections
	// and revoke tokens.
	EdgeSystemCreds      string
	EdgeOperatorSeedFile string
	// MailpitURL is Mailpit's web UI and API; MailpitSMTP its SMTP host:port.
	MailpitURL  string
	MailpitSMTP string
	// UnsubscribeKeys sign (gateways) and verify (wishlist API) the
	// one-click unsubscribe links.
	UnsubscribeKeys string
	// ClickKeys sign (gateways) and verify (engagement) the tracked links.
	ClickKeys string
	Extra     [][2]string // service URLs, added as they start
}

// StartInfra brings up Kafka, NATS and Redis under cfg.DataDir and applies the catalogue.
func StartInfra(ctx context.Context, cfg Config, log *zap.Logger) (*Infra, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, err
	}
	if err := checkKafkaLayout(cfg.DataDir); err != nil {
		return nil, err
	}
	token, err := apiToken(cfg)
	if err != nil {
		return nil, err
	}
	unsubKeys, err := generatedKeys(cfg, "unsubscribe-keys")
	if err != nil {
		return nil, err
	}
	clickKeys, err := generatedKeys(cfg, "click-keys")
	if err != nil {
		return nil, err
	}
	ports := make([]int, len(cfg.KafkaPorts))
	for i, p := range cfg.KafkaPorts {
		fmt.Sscanf(p, "%d", &ports[i])
	}
	if err := checkPorts(cfg, ports); err != nil {
		return nil, err
	}
	in := &Infra{}
	k, err := startKafka(filepath.Join(cfg.DataDir, "kafka"), ports)
	if err != nil {
		return nil, err
	}
	in.Kafka = k
	// The edge runs in NATS operator mode: browsers get user-scoped JWTs from
	// the notifier; services use the creds file kept under <data-dir>/edge.
	edgeDir, err := filepath.Abs(filepath.Join(cfg.DataDir, "edge"))
	if err != nil {
		in.Close()
		return nil, err
	}
	trust, err := edgeauth.LoadOrCreate(edgeDir)
	if err != nil {
		in.Close()
		return nil, err
	}
	configure, err := edgeserver.Configure(trust, filepath.Join(cfg.DataDir, "nats", "accounts"))
	if err != nil {
		in.Close()
		return nil, err
	}
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: filepath.Join(cfg.DataDir, "nats"), Port: cfg.NATSPort, WSPort: cfg.NATSWSPort, Configure: configure})
	if err != nil {
		in.Close()
		return nil, err
	}
	in.NATS = n
	redisURL, err := in.startRedis(cfg, log)
	if err != nil {
		in.Close()
		return nil, err
	}
	// Mailpit from bin/tools, else built there on the first run (a few
	// minutes), as the tests get it: make demo needs nothing but Go.
	mp, err := testenv.StartMailpit(testenv.MailpitOptions{Dir: filepath.Join(cfg.DataDir, "mailpit"),
		SMTPPort: cfg.MailpitSMTPPort, HTTPPort: cfg.MailpitPort})
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("start mailpit: %w", err)
	}
	in.Mailpit = mp
	if err := ApplyCatalog(ctx, kafka.Config{Brokers: k.Brokers}, len(ports), log); err != nil {
		in.Close()
		return nil, err
	}
	in.Env = Env{KafkaBrokers: k.BrokerList(), RedisURL: redisURL, NATSURL: n.URL(), NATSWSURL: n.WSURL(), APIToken: token,
		NATSCreds: filepath.Join(edgeDir, edgeauth.FileServiceCreds), EdgeAccountSeedFile: filepath.Join(edgeDir, edgeauth.FileAppSeed),
		EdgeSystemCreds: filepath.Join(edgeDir, edgeauth.FileSystemCreds), EdgeOperatorSeedFile: filepath.Join(edgeDir, edgeauth.FileOperatorSigningSeed),
		MailpitURL: mp.HTTPURL, MailpitSMTP: mp.SMTPAddr, UnsubscribeKeys: unsubKeys,
		ClickKeys: clickKeys}
	return in, nil
}

// startRedis starts the stack's supervised redis-server, or the embedded Go
// Redis where none is installed (it lives and dies with this process).
func (in *Infra) startRedis(cfg Config, log *zap.Logger) (string, error) {
	dir := filepath.Join(cfg.DataDir, "redis")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		log.Warn("redis-server not found on PATH: using the embedded Go Redis (state is not persisted)")
		r, err := testenv.StartRedis(testenv.RedisOptions{Dir: dir, Port: cfg.RedisPort})
		if err != nil {
			return "", err
		}
		in.redis = r
		return r.URL(), nil
	}
	r, err := startRedisServer(bin, cfg.RedisPort, dir, log.Named("redis-server"))
	if err != nil {
		return "", err
	}
	in.redis = r
	return r.URL(), nil
}

// KafkaLayout names how the data dir's Kafka logs map keys to partitions:
// the producers' murmur2 (kafka.NewPartitioner), kept in
// <data-dir>/kafka-partitioner. A data dir without it was written by
// producers hashing with sarama's FNV-1a: its keyed records (the compacted
// wishlist.changes.v1 and inventory.stock.v1 above all) sit on partitions
// other than where new records of the same keys go, so a rebuild could
// read a key's old value after its new one, and compaction never removes
// it. The stack refuses such a data dir instead of mixing the two.
const KafkaLayout = "murmur2"

// checkKafkaLayout passes a data dir written with KafkaLayout, or one
// without Kafka data yet (and marks it); any other is refused with how to
// start afresh: the demo data is seeded again then.
func checkKafkaLayout(dataDir string) error {
	marker := filepath.Join(dataDir, "kafka-partitioner")
	b, err := os.ReadFile(marker)
	switch {
	case err == nil && strings.TrimSpace(string(b)) == KafkaLayout:
		return nil
	case err == nil:
		return fmt.Errorf("%s names partitioner %q, this stack writes %q: remove the data dir (rm -rf %s) and start again; the demo data is seeded again",
			marker, strings.TrimSpace(string(b)), KafkaLayout, dataDir)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("read %s: %w", marker, err)
	}
	if entries, err := os.ReadDir(filepath.Join(dataDir, "kafka")); err == nil && len(entries) > 0 {
		return fmt.Errorf("%s holds Kafka data written before the producers partitioned keys with murmur2 (as Java and kcat do): "+
			"its keyed records sit on other partitions than new records of the same keys. Remove the data dir (rm -rf %s) and start again; the demo data is seeded again",
			dataDir, dataDir)
	}
	return os.WriteFile(marker, []byte(KafkaLayout+"\n"), 0o644)
}

func startKafka(dir string, ports []int) (*testenv.Kafka, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	// The cluster persists its logs and group offsets across restarts of the stack.
	return testenv.StartKafkaOnPorts(ports, kfake.DataDir(dir))
}

// ApplyCatalog creates or updates the catalogue's topics, sized for the cluster.
func ApplyCatalog(ctx context.Context, kc kafka.Config, brokers int, log *zap.Logger) error {
	cat, err := catalog.Default()
	if err != nil {
		return err
	}
	cat = cat.ForBrokers(brokers)
	adm, err := kafka.NewClusterAdmin(kc)
	if err != nil {
		return err
	}
	defer adm.Close()
	plan, err := catalog.Plan(ctx, adm, cat, false)
	if err != nil {
		return fmt.Errorf("plan topics: %w", err)
	}
	if err := catalog.Apply(ctx, adm, plan); err != nil {
		return fmt.Errorf("apply topics: %w", err)
	}
	log.Info("topic catalogue applied", zap.Int("topics", len(cat.Topics)), zap.Int("changes", len(plan.Actions)))
	return nil
}

// apiToken is the configured token, else one generated on the first run and
// kept in the data dir so restarts and scripts agree on it.
func apiToken(cfg Config) (string, error) {
	if cfg.APIToken != "" {
		return cfg.APIToken, nil
	}
	path := filepath.Join(cfg.DataDir, "api-token")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 16)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	tok := "dev-" + hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write api token: %w", err)
	}
	return tok, nil
}

// generatedKeys is the signing key kept in the data dir's file name (the
// one-click unsubscribe links', the tracked links'), generated on the
// first run, so links in emails already in Mailpit keep working after a
// restart.
func generatedKeys(cfg Config, name string) (string, error) {
	path := filepath.Join(cfg.DataDir, name)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	keys := "dev1:" + hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(keys+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	return keys, nil
}

// Close stops the infrastructure, last started first.
func (in *Infra) Close() {
	if in.Mailpit != nil {
		in.Mailpit.Close()
	}
	if in.redis != nil {
		in.redis.Close()
	}
	if in.NATS != nil {
		in.NATS.Close()
	}
	if in.Kafka != nil {
		in.Kafka.Close()
	}
}

// Lines renders the env as shell KEY=value lines.
func (e Env) Lines() []string {
	lines := []string{
		"KAFKA_BROKERS=" + e.KafkaBrokers,
		"REDIS_URL=" + e.RedisURL,
		"NATS_URL=" + e.NATSURL,
		"NATS_WS_URL=" + e.NATSWSURL,
		"API_TOKEN=" + e.APIToken,
		"NATS_CREDS=" + e.NATSCreds,
		"EDGE_ACCOUNT_SEED_FILE=" + e.EdgeAccountSeedFile,
		"EDGE_SYSTEM_CREDS=" + e.EdgeSystemCreds,
		"EDGE_OPERATOR_SEED_FILE=" + e.EdgeOperatorSeedFile,
		"MAILPIT_URL=" + e.MailpitURL,
		"MAILPIT_SMTP_ADDR=" + e.MailpitSMTP,
		"UNSUBSCRIBE_KEYS=" + e.UnsubscribeKeys,
		"CLICK_KEYS=" + e.ClickKeys,
	}
	for _, kv := range e.Extra {
		lines = append(lines, kv[0]+"="+kv[1])
	}
	return lines
}

// WriteEnv writes devstack.env atomically and prints it to w.
func WriteEnv(dataDir string, e Env, w io.Writer) error {
	path := filepath.Join(dataDir, "devstack.env")
	body := "# written by devstack; source it: set -a; . " + path + "; set +a\n" + strings.Join(e.Lines(), "\n") + "\n"
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	_, err := io.WriteString(w, body)
	return err
}
