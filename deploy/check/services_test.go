package check_test

// These tests judge the deployment files against the real services: the
// environment variables against the binaries' own --help (what shared/config
// really binds), and the dashboard's and alert rules' metric names against
// the /metrics of the services running in-process on the test servers.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/deploy/check"
	egapp "backinstock/services/engagement/app"
	gwapp "backinstock/services/gateway/app"
	invapp "backinstock/services/inventory/app"
	ntfapp "backinstock/services/notifier/app"
	wlapp "backinstock/services/wishlist/app"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

var env *testenv.Env

var bins struct {
	once sync.Once
	dir  string
	err  error
}

func TestMain(m *testing.M) {
	code := testenv.Main(m, &env)
	if bins.dir != "" {
		_ = os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

// binaries builds the six binaries once (without -race: only --help runs).
func binaries(t *testing.T) string {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "deploycheck-bins")
		if bins.err != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", bins.dir+string(filepath.Separator),
			"./services/inventory/cmd/inventory", "./services/wishlist/cmd/wishlist",
			"./services/notifier/cmd/notifier", "./services/gateway/cmd/gateway", "./services/engagement/cmd/engagement",
			"./topics/cmd/topics")
		cmd.Dir = repoRoot(t)
		// The flags testenv.BuildBinary and the Dockerfile build with, so
		// make test compiles the services once for every such build.
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			bins.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
	return bins.dir
}

// envTables holds codeEnvTables' result: the binaries' --help is read once
// for every test that judges deploy/ against them (check.Run only reads it).
var envTables struct {
	once   sync.Once
	tables check.EnvTables
	err    error
}

// codeEnvTables are the env names each binary's subcommands bind, read from
// their --help output: the truth the README tables document.
func codeEnvTables(t *testing.T) check.EnvTables {
	t.Helper()
	dir := binaries(t)
	envTables.once.Do(func() { envTables.tables, envTables.err = readEnvTables(dir) })
	if envTables.err != nil {
		t.Fatal(envTables.err)
	}
	return envTables.tables
}

func readEnvTables(dir string) (check.EnvTables, error) {
	cmds := map[string][][]string{
		"inventory":  {{}},
		"wishlist":   {{"serve"}, {"fanout"}, {"replay"}, {"rebuild"}, {"import"}},
		"notifier":   {{"run"}, {"replay"}, {"edge-setup"}},
		"gateway":    {{"run"}},
		"engagement": {{"run"}},
		"topics":     {{"apply"}},
	}
	out := check.EnvTables{}
	for svc, subs := range cmds {
		out[svc] = map[string]bool{}
		for _, sub := range subs {
			cmd := exec.Command(filepath.Join(dir, svc), append(sub, "--help")...)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
			help, _ := cmd.CombinedOutput() // --help may exit 0 or 2
			names := check.EnvFromHelp(string(help))
			if len(names) == 0 {
				return nil, fmt.Errorf("%s %v --help names no env variable:\n%s", svc, sub, help)
			}
			for n := range names {
				out[svc][n] = true
			}
		}
	}
	return out, nil
}

// TestDeploymentEnvAgainstBinaries runs every check with the env names the
// real binaries bind, so a name the manifests set that no binary reads fails
// even where a README table is out of date.
func TestDeploymentEnvAgainstBinaries(t *testing.T) {
	probs := run(t, check.Options{Root: repoRoot(t), Env: codeEnvTables(t)})
	for _, p := range probs {
		t.Errorf("%s", p)
	}
}

// TestReadmeTablesCoverManifestEnv: the README config tables (what `make
// lint` reads) list every env name the binaries bind that the manifests set.
func TestReadmeTablesMatchBinaries(t *testing.T) {
	readme, probs := check.LoadEnvTables(repoRoot(t))
	for _, p := range probs {
		t.Logf("README: %s", p) // reported by TestRealDeploymentFilesPass
	}
	code := codeEnvTables(t)
	for svc, names := range readme {
		for n := range names {
			if !code[svc][n] {
				t.Errorf("%s README documents %s, which no %s subcommand binds", svc, n, svc)
			}
		}
	}
}

// TestDashboardMetricsAreExported runs inventory, the wishlist API, one
// region's fan-out, notifier and gateway and the engagement service in-process against the test Kafka, Redis and
// NATS, pushes one restock through to the edge (and one poison record to the
// dead-letter path), scrapes every /metrics and requires each metric the
// dashboard and the alert rules query to be exported.
func TestDashboardMetricsAreExported(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole pipeline")
	}
	k := env.Kafka(t)
	rd := env.Redis(t)
	nt := env.NATS(t)
	kcfg := kafka.Config{Brokers: k.Brokers}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	adm, err := kafka.NewClusterAdmin(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := catalog.Sync(ctx, adm, cat.ForBrokers(len(k.Brokers)), false); err != nil {
		t.Fatal(err)
	}
	_ = adm.Close()

	const region, token = "us-east-1", "deploycheck-token"
	brokers := "--kafka-brokers=" + strings.Join(k.Brokers, ",")
	redisURL := "--redis-url=" + rd.URL()

	var invCfg invapp.Config
	bind(t, "inventory", func(s *config.Set) { invCfg.Bind(s) }, brokers, redisURL, "--http-addr=127.0.0.1:0", "--api-token="+token)
	var apiCfg wlapp.Config
	bind(t, "wishlist serve", func(s *config.Set) { apiCfg.Bind(s); apiCfg.BindServe(s) }, brokers, redisURL, "--http-addr=127.0.0.1:0", "--api-token="+token)
	var fanCfg wlapp.Config
	bind(t, "wishlist fanout", func(s *config.Set) { fanCfg.Bind(s); fanCfg.BindFanout(s) }, brokers, redisURL, "--metrics-addr=127.0.0.1:0", "--region="+region)
	var ntfCfg ntfapp.Config
	bind(t, "notifier run", func(s *config.Set) { ntfCfg.Bind(s) }, brokers, redisURL, "--http-addr=127.0.0.1:0", "--region="+region, "--nats-url="+nt.URL())
	// The gateway's SMTP server is never reached (the restock asks for the
	// app channel only): its metrics are registered at start.
	var gwCfg gwapp.Config
	bind(t, "gateway run", func(s *config.Set) { gwCfg.Bind(s) }, brokers, redisURL, "--http-addr=127.0.0.1:0", "--region="+region, "--nats-url="+nt.URL(),
		"--email-from=shop@shop.example", "--smtp-tls=none")

	var egCfg egapp.Config
	bind(t, "engagement run", func(s *config.Set) { egCfg.Bind(s) }, brokers, redisURL, "--http-addr=127.0.0.1:0", "--api-token="+token,
		"--click-keys=dc:deploycheck-click-key-of-32-bytes-long")

	procs := []*proc{
		start(t, "inventory", func(ctx context.Context, on func(string), reg *prometheus.Registry, log *zap.Logger) error {
			c := invCfg
			c.OnListen = on
			return invapp.Run(ctx, c, log, reg)
		}),
		start(t, "wishlist-api", func(ctx context.Context, on func(string), reg *prometheus.Registry, log *zap.Logger) error {
			c := apiCfg
			c.OnListen = on
			return wlapp.RunServe(ctx, c, log, reg)
		}),
		start(t, "wishlist-fanout", func(ctx context.Context, on func(string), reg *prometheus.Registry, log *zap.Logger) error {
			c := fanCfg
			c.OnListen = on
			return wlapp.RunFanout(ctx, c, log, reg)
		}),
		start(t, "notifier", func(ctx context.Context, on func(string), reg *prometheus.Registry, log *zap.Logger) error {
			c := ntfCfg
			c.OnListen = on
			return ntfapp.Run(ctx, c, log, reg)
		}),
		start(t, "gateway", func(ctx context.Context, on func(string), reg *prometheus.Registry, log *zap.Logger) error {
			c := gwCfg
			c.OnListen = on
			return gwapp.Run(ctx, c, log, reg)
		}),
		start(t, "engagement", func(ctx context.Context, on func(string), reg *prometheus.Registry, log *zap.Logger) error {
			c := egCfg
			c.OnListen = on
			return egapp.Run(ctx, c, log, reg)
		}),
	}
	inv, api, fan, ntf := procs[0], procs[1], procs[2], procs[3]

	// One restock through the whole pipeline: sold out, a wishlister, back in stock.
	sku := testenv.Unique(t, "sku")
	call(t, http.MethodPut, inv.url("/v1/stock/"+sku), token, `{"region":"`+region+`","quantity":0}`)
	call(t, http.MethodPut, api.url("/v1/users/u1/wishlist/"+sku), token, `{"region":"`+region+`","channels":["app"]}`)
	call(t, http.MethodPut, inv.url("/v1/stock/"+sku), token, `{"region":"`+region+`","quantity":5}`)
	testenv.Eventually(t, 60*time.Second, func() bool {
		return seriesValue(scrape(t, ntf), "backinstock_notifier_sent_total") > 0
	}, "the restock did not reach the edge (backinstock_notifier_sent_total)")

	// One poison record on the restock topic: the fan-out dead-letters it.
	prod, err := kafka.NewProducer(kcfg, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	err = prod.SendAll(ctx, []*sarama.ProducerMessage{{Topic: catalog.Restock, Key: sarama.StringEncoder(sku), Value: sarama.StringEncoder("not json")}})
	_ = prod.Close()
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 60*time.Second, func() bool {
		return seriesValue(scrape(t, fan), "backinstock_consumer_dead_letters_total") > 0
	}, "the poison record was not dead-lettered")

	scraped := map[string]bool{}
	for _, p := range procs {
		for name := range seriesNames(scrape(t, p)) {
			scraped[name] = true
		}
	}
	dash, rules, err := check.Queries(repoRoot(t))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, q := range append(dash, rules...) {
		ns, err := check.MetricNames(q.Expr)
		if err != nil {
			t.Fatalf("%s: %v", q.Where, err)
		}
		for _, n := range ns {
			if !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	// The dashboard's headline series must really be on /metrics after
	// one restock, not only registered.
	mustScrape := []string{
		"backinstock_inventory_restocks_total", "backinstock_inventory_publish_latency_seconds_bucket", "backinstock_inventory_outbox_oldest_age_seconds",
		"backinstock_wishlist_notifications_produced_total", "backinstock_notifier_sent_total",
		"backinstock_notifier_publish_seconds_bucket", "backinstock_consumer_lag_records",
		"backinstock_consumer_dead_letters_total",
	}
	for _, n := range mustScrape {
		if !slices.Contains(names, n) {
			t.Errorf("the dashboard and rules no longer query %s", n)
		}
		if !scraped[n] {
			t.Errorf("%s is not on any /metrics after a restock reached the edge", n)
		}
	}
	if p := registeredIn(procs, "backinstock_deploycheck_no_such_metric_total"); p != "" {
		t.Fatalf("the registry probe claims %s registers a metric that does not exist", p)
	}
	for _, n := range names {
		if scraped[n] || check.PrometheusSeries(n) {
			continue
		}
		// A labelled metric with no observation yet (held, dropped, edge
		// failures) is absent from /metrics; the running service's registry
		// still proves the name is registered.
		if p := registeredIn(procs, n); p != "" {
			t.Logf("%s: registered by %s, no series yet", n, p)
			continue
		}
		t.Errorf("the dashboard or alert rules query %s, which no running service exports", n)
	}
}

func bind(t *testing.T, name string, b func(*config.Set), args ...string) {
	t.Helper()
	s := config.NewSet(name)
	b(s)
	s.FS.SetOutput(io.Discard)
	if err := s.Parse(args); err != nil {
		t.Fatalf("%s flags: %v", name, err)
	}
}

type proc struct {
	name string
	addr string
	reg  *prometheus.Registry
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// start runs one service until the test ends and waits for its listener.
func start(t *testing.T, name string, run func(ctx context.Context, onListen func(string), reg *prometheus.Registry, log *zap.Logger) error) *proc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	reg := prometheus.NewRegistry()
	addrc := make(chan string, 1)
	errc := make(chan error, 1)
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named(name)
	go func() { errc <- run(ctx, func(a string) { addrc <- a }, reg, log) }()
	p := &proc{name: name, reg: reg}
	select {
	case p.addr = <-addrc:
	case err := <-errc:
		cancel()
		t.Fatalf("%s did not start: %v", name, err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatalf("%s did not start within 30s", name)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", name, err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("%s did not stop within 60s", name)
		}
	})
	return p
}

func call(t *testing.T, method, url, token, body string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %d %s", method, url, resp.StatusCode, data)
	}
}

func scrape(t *testing.T, p *proc) []byte {
	t.Helper()
	resp, err := http.Get(p.url("/metrics"))
	if err != nil {
		t.Fatalf("scrape %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %d %v", p.name, resp.StatusCode, err)
	}
	return data
}

// seriesNames lists the series names of a text exposition.
func seriesNames(data []byte) map[string]bool {
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			out[line[:i]] = true
		}
	}
	return out
}

// seriesValue sums the samples of one series name.
func seriesValue(data []byte, name string) float64 {
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
			sum += v
		}
	}
	return sum
}

// registeredIn names the process whose registry holds a metric called name
// (or the histogram a _bucket/_sum/_count series belongs to): registering a
// probe of that name fails exactly when the name is taken.
func registeredIn(procs []*proc, name string) string {
	base := name
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, s); ok {
			base = b
		}
	}
	for _, p := range procs {
		for _, n := range []string{name, base} {
			probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: n, Help: "deploycheck probe"})
			if err := p.reg.Register(probe); err != nil {
				return p.name
			}
			p.reg.Unregister(probe)
		}
	}
	return ""
}
