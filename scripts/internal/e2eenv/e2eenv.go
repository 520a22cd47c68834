// Package e2eenv runs the whole backinstock pipeline as a user would meet
// it: the real binaries (inventory, wishlist serve and fanout, notifier) as
// separate processes against a kfake Kafka cluster, an embedded nats-server
// in JWT mode and redis-server. The infrastructure lives in the calling
// process so a scenario can break it (restart a broker, stop NATS, restart
// Redis) and the services are children it can SIGKILL. The e2e tests and the
// e2e benchmark share it.
package e2eenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"backinstock/services/notifier/edgeauth"
	"backinstock/services/notifier/edgeauth/edgeserver"
	"backinstock/shared/testenv"
)

// Logger is what the environment reports progress to (testing.T, or a Printer).
type Logger interface {
	Logf(format string, args ...any)
}

// Printer is the Logger of the drivers: lines to W, each tagged and timed
// ("[e2e 15:04:05.000] ...").
type Printer struct {
	W   io.Writer
	Tag string
}

func (p Printer) Logf(format string, args ...any) {
	fmt.Fprintf(p.W, "[%s %s] %s\n", p.Tag, time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// Binaries the environment builds, by import path.
var binaries = []string{
	"backinstock/services/inventory/cmd/inventory",
	"backinstock/services/wishlist/cmd/wishlist",
	"backinstock/services/notifier/cmd/notifier",
	"backinstock/services/gateway/cmd/gateway",
	"backinstock/topics/cmd/topics",
}

// RepoRoot finds the workspace root (the directory of go.work) from the
// working directory, so tests and the bench build the code of this checkout.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.work above the working directory")
		}
		dir = parent
	}
}

// Build compiles the service binaries into binDir (without -race: the
// processes are measured and loaded, not race-checked).
func Build(ctx context.Context, root, binDir string) error {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	args := append([]string{"build", "-o", binDir + string(os.PathSeparator)}, binaries...)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go build %s: %w\n%s", strings.Join(binaries, " "), err, out)
	}
	return nil
}

// Options shape a stack.
type Options struct {
	// Dir holds logs, Redis and NATS data, the edge keys and the binaries.
	Dir     string
	Regions []string
	Log     Logger
	// BinDir, when set, holds already built binaries.
	BinDir string
	// Env is added to every service's environment (after the defaults, so
	// it overrides them); ServiceEnv per service name ("inventory",
	// "wishlist", "fanout-<region>", "notifier-<region>", "gateway-<region>";
	// every replica of a region's fan-out or notifier gets its service's).
	Env        []string
	ServiceEnv map[string][]string
}

// Stack is the running system.
type Stack struct {
	Dir     string
	BinDir  string
	Token   string
	Regions []string
	Log     Logger

	Kafka *Kafka
	NATS  *testenv.NATS
	Redis *testenv.Redis
	// Edge is the NATS trust setup; ClientCreds a service user's creds file
	// for the environment's own edge connections.
	Edge        *edgeauth.Setup
	EdgeDir     string
	ClientCreds string

	Inventory *Proc
	Wishlist  *Proc
	// Fanout and Notifier are each region's replicas: one of each from
	// Start, more with Scale. Replica i of fanout-<region> is the process
	// fanout-<region>.i, which is also its KAFKA_GROUP_INSTANCE_ID, as a
	// pod's name is in deploy/k8s: a restarted replica rejoins the group
	// as the member it was.
	Fanout   map[string][]*Proc
	Notifier map[string][]*Proc
	// Gateway is each region's gateway, once a scenario started one
	// (StartGateway): its providers point at servers the scenario runs.
	Gateway map[string]*Proc

	opts Options
}

// StopNATS shuts the edge's nats-server down (its JetStream store stays).
func (s *Stack) StopNATS() { s.NATS.Stop() }

// StartNATS brings the stopped nats-server back on the same ports and store.
func (s *Stack) StartNATS() error {
	if err := s.NATS.Restart(); err != nil {
		return fmt.Errorf("restart nats-server: %w", err)
	}
	return nil
}

// Start brings up infrastructure, applies the topic catalogue with the real
// topics binary, and starts every service, waiting for each /readyz.
func Start(ctx context.Context, o Options) (*Stack, error) {
	if len(o.Regions) == 0 {
		o.Regions = []string{"us-east-1", "eu-west-1", "ap-south-1"}
	}
	s := &Stack{Dir: o.Dir, Regions: o.Regions, Log: o.Log, Token: "e2e-token-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		Fanout: map[string][]*Proc{}, Notifier: map[string][]*Proc{}, Gateway: map[string]*Proc{}, opts: o}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Stack) start(ctx context.Context) error {
	o := s.opts
	for _, d := range []string{"logs", "redis", "nats", "edge"} {
		if err := os.MkdirAll(filepath.Join(o.Dir, d), 0o755); err != nil {
			return err
		}
	}
	s.BinDir = o.BinDir
	if s.BinDir == "" {
		root, err := RepoRoot()
		if err != nil {
			return err
		}
		s.BinDir = filepath.Join(o.Dir, "bin")
		t0 := time.Now()
		if err := Build(ctx, root, s.BinDir); err != nil {
			return err
		}
		s.logf("built %d binaries in %s", len(binaries), time.Since(t0).Round(time.Millisecond))
	}

	var err error
	if s.Kafka, err = StartKafka(3); err != nil {
		return err
	}
	s.EdgeDir = filepath.Join(o.Dir, "edge")
	if s.Edge, err = edgeauth.LoadOrCreate(s.EdgeDir); err != nil {
		return err
	}
	creds, err := s.Edge.ServiceCreds("e2eenv")
	if err != nil {
		return err
	}
	s.ClientCreds = filepath.Join(s.EdgeDir, "e2eenv.creds")
	if err := os.WriteFile(s.ClientCreds, creds, 0o600); err != nil {
		return err
	}
	configure, err := edgeserver.Configure(s.Edge, filepath.Join(o.Dir, "nats", "accounts"))
	if err != nil {
		return err
	}
	if s.NATS, err = testenv.StartNATS(testenv.NATSOptions{StoreDir: filepath.Join(o.Dir, "nats"), Configure: configure}); err != nil {
		return err
	}
	if s.Redis, err = testenv.StartRedis(testenv.RedisOptions{Dir: filepath.Join(o.Dir, "redis"), AppendOnly: true}); err != nil {
		return err
	}
	if s.Redis.Embedded() {
		s.logf("WARNING: no redis-server on PATH; using the embedded Go stand-in (no AOF across restarts)")
	}
	s.logf("infra: kafka %s, nats %s, redis %s", s.Kafka.BrokerList(), s.NATS.URL(), s.Redis.URL())

	if err := s.applyTopics(ctx); err != nil {
		return err
	}
	if err := s.startServices(ctx); err != nil {
		return err
	}
	return nil
}

func (s *Stack) logf(format string, args ...any) {
	if s.Log != nil {
		s.Log.Logf(format, args...)
	}
}

func (s *Stack) applyTopics(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.BinDir, "topics"), "apply")
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+s.Kafka.BrokerList(), "LOG_LEVEL=warn")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("topics apply: %w\n%s", err, out)
	}
	return nil
}

// commonEnv is the configuration every service gets.
func (s *Stack) commonEnv() []string {
	return []string{
		"KAFKA_BROKERS=" + s.Kafka.BrokerList(),
		"REDIS_URL=" + s.Redis.URL(),
		"NATS_URL=" + s.NATS.URL(),
		"REGIONS=" + strings.Join(s.Regions, ","),
		"API_TOKEN=" + s.Token,
		"LOG_LEVEL=info",
	}
}

// newProc prepares a service process; service names its ServiceEnv and
// name its log (they differ for the replicas of a region).
func (s *Stack) newProc(service, name string, args []string, addrEnv string, extra ...string) (*Proc, error) {
	port, err := testenv.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	bin := filepath.Join(s.BinDir, args[0])
	env := append(s.commonEnv(), addrEnv+"="+addr)
	env = append(env, extra...)
	env = append(env, s.opts.Env...)
	env = append(env, s.opts.ServiceEnv[service]...)
	return &Proc{Name: name, Bin: bin, Args: args[1:], Env: env, Addr: addr,
		LogPath: filepath.Join(s.Dir, "logs", name+".log")}, nil
}

// newReplica prepares replica i of region's fan-out worker and notifier.
func (s *Stack) newReplica(region string, i int) (fanout, notifier *Proc, err error) {
	name := fmt.Sprintf("fanout-%s.%d", region, i)
	if fanout, err = s.newProc("fanout-"+region, name, []string{"wishlist", "fanout", "--region", region}, "METRICS_ADDR",
		"KAFKA_GROUP_INSTANCE_ID="+name); err != nil {
		return nil, nil, err
	}
	name = fmt.Sprintf("notifier-%s.%d", region, i)
	if notifier, err = s.newProc("notifier-"+region, name, []string{"notifier", "run", "--region", region}, "HTTP_ADDR",
		"NATS_CREDS="+filepath.Join(s.EdgeDir, edgeauth.FileServiceCreds), "REGION="+region, "KAFKA_GROUP_INSTANCE_ID="+name); err != nil {
		return nil, nil, err
	}
	return fanout, notifier, nil
}

func (s *Stack) startServices(ctx context.Context) error {
	var all []*Proc
	var err error
	if s.Inventory, err = s.newProc("inventory", "inventory", []string{"inventory"}, "HTTP_ADDR"); err != nil {
		return err
	}
	// The wishlist API reaches NATS for a user's export and erasure (the
	// edge streams) as its own service user.
	if s.Wishlist, err = s.newProc("wishlist", "wishlist", []string{"wishlist", "serve"}, "HTTP_ADDR",
		"NATS_CREDS="+filepath.Join(s.EdgeDir, edgeauth.FileWishlistCreds)); err != nil {
		return err
	}
	all = append(all, s.Inventory, s.Wishlist)
	for _, r := range s.Regions {
		f, n, err := s.newReplica(r, 0)
		if err != nil {
			return err
		}
		s.Fanout[r], s.Notifier[r] = []*Proc{f}, []*Proc{n}
		all = append(all, f, n)
	}
	t0 := time.Now()
	if err := startAll(ctx, all); err != nil {
		return err
	}
	s.logf("%d services ready in %s", len(all), time.Since(t0).Round(time.Millisecond))
	return nil
}

// startAll starts every process, then waits for each one's /readyz.
func startAll(ctx context.Context, procs []*Proc) error {
	for _, p := range procs {
		if err := p.Start(); err != nil {
			return err
		}
	}
	for _, p := range procs {
		if err := p.WaitReady(ctx, 90*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// Scale runs n fan-out workers and n notifiers for region: it starts the
// missing replicas (waiting until they are ready) or stops the extra ones
// gracefully, the newest first.
func (s *Stack) Scale(ctx context.Context, region string, n int) error {
	if n < 1 {
		return fmt.Errorf("scale %s to %d: at least one replica", region, n)
	}
	var started []*Proc
	for i := len(s.Fanout[region]); i < n; i++ {
		f, nt, err := s.newReplica(region, i)
		if err != nil {
			return err
		}
		s.Fanout[region] = append(s.Fanout[region], f)
		s.Notifier[region] = append(s.Notifier[region], nt)
		started = append(started, f, nt)
	}
	if err := startAll(ctx, started); err != nil {
		return err
	}
	for len(s.Fanout[region]) > n {
		last := len(s.Fanout[region]) - 1
		f, nt := s.Fanout[region][last], s.Notifier[region][last]
		if err := errors.Join(f.Stop(30*time.Second), nt.Stop(30*time.Second)); err != nil {
			return err
		}
		s.Fanout[region], s.Notifier[region] = s.Fanout[region][:last], s.Notifier[region][:last]
	}
	return nil
}

// StartGateway starts `gateway run` for region with the edge's service
// credentials and env (channels, providers and their servers), and waits
// until it is ready. The stack stops it on Close; StopGateway earlier.
func (s *Stack) StartGateway(ctx context.Context, region string, env ...string) (*Proc, error) {
	if s.Gateway[region] != nil {
		return nil, fmt.Errorf("gateway-%s is already running", region)
	}
	env = append([]string{"NATS_CREDS=" + filepath.Join(s.EdgeDir, edgeauth.FileServiceCreds), "REGION=" + region}, env...)
	p, err := s.newProc("gateway-"+region, "gateway-"+region, []string{"gateway", "run"}, "HTTP_ADDR", env...)
	if err != nil {
		return nil, err
	}
	if err := startAll(ctx, []*Proc{p}); err != nil {
		_ = p.Stop(15 * time.Second)
		return nil, err
	}
	s.Gateway[region] = p
	return p, nil
}

// StopGateway stops region's gateway gracefully.
func (s *Stack) StopGateway(region string) error {
	p := s.Gateway[region]
	if p == nil {
		return nil
	}
	delete(s.Gateway, region)
	return p.Stop(30 * time.Second)
}

// Procs lists every service process.
func (s *Stack) Procs() []*Proc {
	out := []*Proc{s.Inventory, s.Wishlist}
	for _, r := range s.Regions {
		out = append(out, s.Fanout[r]...)
		out = append(out, s.Notifier[r]...)
		out = append(out, s.Gateway[r])
	}
	var live []*Proc
	for _, p := range out {
		if p != nil {
			live = append(live, p)
		}
	}
	return live
}

// Logs returns the tail of every service's log, for a failure report.
func (s *Stack) Logs(lines int) string {
	var b strings.Builder
	for _, p := range s.Procs() {
		fmt.Fprintf(&b, "----- %s (%s) -----\n%s\n", p.Name, p.LogPath, p.Tail(lines))
	}
	return b.String()
}

// Close stops the services (SIGTERM, graceful) and the infrastructure.
func (s *Stack) Close() {
	for _, p := range s.Procs() {
		_ = p.Stop(15 * time.Second)
	}
	if s.Redis != nil {
		s.Redis.Close()
	}
	if s.NATS != nil {
		s.NATS.Close()
	}
	if s.Kafka != nil {
		s.Kafka.Close()
	}
}
