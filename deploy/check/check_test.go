package check_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"backinstock/deploy/check"
)

// repoRoot is the repository root seen from this package's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// copyTree copies the files under src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// scratchRepo copies what deploycheck reads (deploy/ less the Go modules,
// the topic catalogue) into a temporary root that a test may break.
func scratchRepo(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	tmp := t.TempDir()
	for _, dir := range []string{"deploy/k8s", "deploy/compose", "deploy/docker", "deploy/grafana", "docs"} {
		copyTree(t, filepath.Join(root, dir), filepath.Join(tmp, dir))
	}
	if err := os.MkdirAll(filepath.Join(tmp, "topics"), 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "topics", "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "topics", "catalog.yaml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	docs, _ := filepath.Glob(filepath.Join(root, "services", "*", "openapi.yaml"))
	for _, d := range docs {
		rel, _ := filepath.Rel(root, d)
		data, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return tmp
}

// declaredMetrics parses the sources' metric names once for every case
// (check.Run only reads them).
var declaredMetrics = sync.OnceValues(func() (map[string]bool, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return nil, err
	}
	return check.DeclaredMetrics(root)
})

// realOptions are the env tables of the real binaries and the metric names
// of the real sources, so a scratch copy of deploy/ is judged against the
// real services.
func realOptions(t *testing.T, root string) check.Options {
	t.Helper()
	metrics, err := declaredMetrics()
	if err != nil {
		t.Fatal(err)
	}
	return check.Options{Root: root, Env: codeEnvTables(t), Metrics: metrics}
}

func run(t *testing.T, opts check.Options) []check.Problem {
	t.Helper()
	probs, err := check.Run(opts)
	if err != nil {
		t.Fatal(err)
	}
	return probs
}

func TestRealDeploymentFilesPass(t *testing.T) {
	probs := run(t, check.Options{Root: repoRoot(t)})
	for _, p := range probs {
		t.Errorf("%s", p)
	}
}

// TestBrokenFilesFail breaks one thing at a time in a scratch copy and
// requires a new problem that names the field (or the thing) broken.
func TestBrokenFilesFail(t *testing.T) {
	cases := []struct {
		name, file, old, new string
		want                 []string // every one must be in one new problem
	}{
		{"misspelt replicas in a Deployment", "deploy/k8s/base/notifier.yaml", "  replicas: 2\n", "  replicsa: 2\n",
			[]string{"Deployment/notifier", "spec.replicsa", "unknown field", "deploy/k8s/base/notifier.yaml:"}},
		{"misspelt containerPort", "deploy/k8s/base/inventory.yaml", "containerPort: 8080", "containerPrt: 8080",
			[]string{"Deployment/inventory", "spec.template.spec.containers[0].ports[0].containerPrt"}},
		{"wrong case in a probe", "deploy/k8s/base/fanout.yaml", "periodSeconds: 5\n", "PeriodSeconds: 5\n",
			[]string{"Deployment/wishlist-fanout", "readinessProbe.PeriodSeconds"}},
		{"misspelt ScaledObject field", "deploy/k8s/base/fanout.yaml", "cooldownPeriod: 300", "cooldownPeriods: 300",
			[]string{"ScaledObject/wishlist-fanout", "spec.cooldownPeriods"}},
		{"misspelt KEDA Kafka trigger setting", "deploy/k8s/base/fanout.yaml", "lagThreshold: \"10\"", "lagTreshold: \"10\"",
			[]string{"ScaledObject/wishlist-fanout", "metadata.lagTreshold"}},
		{"KEDA bound above the partitions", "deploy/k8s/overlays/eu-west-1/kustomization.yaml", "path: /spec/maxReplicaCount\n        value: 12", "path: /spec/maxReplicaCount\n        value: 24",
			[]string{"overlays/eu-west-1", "spec.maxReplicaCount", "exceeds the 12 partitions"}},
		{"replicas above the partitions", "deploy/k8s/overlays/us-east-1/kustomization.yaml", "  - name: notifier\n    count: 3", "  - name: notifier\n    count: 13",
			[]string{"Deployment/notifier", "spec.replicas", "exceed the 12 partitions"}},
		{"misspelt env name", "deploy/k8s/base/inventory.yaml", "- name: REDIS_URL", "- name: REDIS_ULR",
			[]string{"Deployment/inventory", "env[1].name", "REDIS_ULR"}},
		{"probe on the wrong path", "deploy/k8s/base/inventory.yaml", "path: /readyz", "path: /ready",
			[]string{"Deployment/inventory", "readinessProbe.httpGet.path"}},
		{"bad rate limit", "deploy/k8s/overlays/ap-south-1/kustomization.yaml", "RATE_LIMITS=sms=50", "RATE_LIMITS=smss=50",
			[]string{"data.RATE_LIMITS", "smss"}},
		{"a Secret in the manifests", "deploy/k8s/base/kustomization.yaml", "configMapGenerator:", "secretGenerator:\n  - name: leaked\n    literals: [password=hunter2]\nconfigMapGenerator:",
			[]string{"Secret/leaked", "must not carry secrets"}},
		{"misspelt compose key", "deploy/compose/compose.yaml", "    restart: \"no\"", "    restrat: \"no\"",
			[]string{"compose.yaml", "restrat"}},
		{"compose env typo", "deploy/compose/compose.yaml", "      REGION: eu-west-1\n      LOG_LEVEL: info\n", "      REGOIN: eu-west-1\n      LOG_LEVEL: info\n",
			[]string{"compose.yaml", "environment.REGOIN"}},
		{"compose without AOF", "deploy/compose/compose.yaml", `"--appendonly", "yes"`, `"--appendonly", "no"`,
			[]string{"services.redis", "appendonly"}},
		{"unpinned image", "deploy/compose/compose.yaml", "image: redis:7.4.1-alpine", "image: redis:latest",
			[]string{"services.redis", "image", "not pinned"}},
		{"dashboard metric that no service exports", "deploy/grafana/dashboard.json", "backinstock_inventory_restocks_total", "inventory_restock_total",
			[]string{"dashboard.json", "inventory_restock_total", "not declared"}},
		// The outbox backlog (a count) was plotted in seconds until
		// deploycheck read the units.
		{"a count plotted in seconds", "deploy/grafana/dashboard.json", `"value": "short"`, `"value": "s"`,
			[]string{"dashboard.json", "Outbox: oldest unpublished entry", "targets.B", "returns a number", "unit \"s\""}},
		{"alert without its runbook", "deploy/grafana/alerts.yaml", "          runbook_url: \"docs/runbooks.md#backinstockdeadletters\"\n", "",
			[]string{"alerts.yaml", "BackinstockDeadLetters", "annotations.runbook_url", "missing"}},
		{"runbook section missing", "docs/runbooks.md", "## backinstockrelayerrors\n", "## relay\n",
			[]string{"docs/runbooks.md", "backinstockrelayerrors"}},
		{"PrometheusRule out of date", "deploy/grafana/alerts.yaml", "for: 10m\n        labels:\n          severity: warning", "for: 15m\n        labels:\n          severity: warning",
			[]string{"prometheusrule.yaml", "PrometheusRule/backinstock", "make rules"}},
		{"PodMonitor on a port the pods lack", "deploy/k8s/components/prometheus-operator/podmonitor.yaml", "- port: http", "- port: metrics",
			[]string{"prometheus-operator", "PodMonitor/backinstock", "no port named \"metrics\""}},
		{"alert rule field typo", "deploy/grafana/alerts.yaml", "    rules:\n", "    rulez:\n",
			[]string{"alerts.yaml", "rulez"}},
		{"PromQL syntax error", "deploy/grafana/alerts.yaml", "expr: max(backinstock_inventory_outbox_oldest_age_seconds) > 60", "expr: max(backinstock_inventory_outbox_oldest_age_seconds > 60",
			[]string{"alerts.yaml", "PromQL"}},
		// The wishlist document shipped with this line unquoted until
		// deploycheck read the OpenAPI documents.
		{"OpenAPI document that is not YAML", "services/wishlist/openapi.yaml", `description: "Wishlist time of a new entry (default: the import time)"`, `description: Wishlist time of a new entry (default: the import time)`,
			[]string{"services/wishlist/openapi.yaml", "does not load"}},
		{"OpenAPI dangling $ref", "services/inventory/openapi.yaml", `$ref: "#/components/schemas/`, `$ref: "#/components/schemas/Nope`,
			[]string{"services/inventory/openapi.yaml", "Nope"}},
		// The compose file shipped this id until deploycheck read it as
		// kafka-storage format does.
		{"Kafka cluster id that is not a UUID", "deploy/compose/compose.yaml", "CLUSTER_ID: eAtmPVwhSPqWhfHVUk292Q", "CLUSTER_ID: bk-compose-cluster-0001",
			[]string{"services.kafka-1", "environment.CLUSTER_ID", "base64url-encoded UUID"}},
		{"quorum voter on the wrong port", "deploy/compose/compose.yaml", "2@kafka-2:9093", "2@kafka-2:9092",
			[]string{"services.kafka-1", "KAFKA_CONTROLLER_QUORUM_VOTERS", "voter 2", "no controller listener on port 9092"}},
		{"advertised controller listener", "deploy/compose/compose.yaml", "KAFKA_ADVERTISED_LISTENERS: INTERNAL://kafka-3:9092,", "KAFKA_ADVERTISED_LISTENERS: CONTROLLER://kafka-3:9093,INTERNAL://kafka-3:9092,",
			[]string{"services.kafka-3", "must not advertise the controller listener"}},
		{"Kafka data off its volume", "deploy/compose/compose.yaml", "kafka-2-data:/var/lib/kafka/data", "kafka-2-data:/srv/kafka",
			[]string{"services.kafka-2", "volumes", "no named volume at /var/lib/kafka/data"}},
		{"Redis data off its volume", "deploy/compose/compose.yaml", "redis-data:/data", "redis-data:/srv/redis",
			[]string{"services.redis", "volumes", "no named volume at /data"}},
		// The compose NATS and Kubernetes (which had none) shipped an open
		// edge until deploycheck read their nats.conf.
		{"compose NATS without operator or authorization", "deploy/compose/nats.conf", "operator: /etc/nats/edge/operator.jwt\n", "",
			[]string{"services.nats", "nats.conf: authorization", "may subscribe to edge.>"}},
		{"compose NATS with a no_auth_user", "deploy/compose/nats.conf", "http_port: 8222\n", "http_port: 8222\nno_auth_user: guest\n",
			[]string{"services.nats", "nats.conf: no_auth_user"}},
		{"compose NATS mounting no configuration", "deploy/compose/compose.yaml", "      - ./nats.conf:/etc/nats/nats.conf:ro\n", "",
			[]string{"services.nats", "volumes", "no nats.conf"}},
		{"k8s NATS user granted edge.>", "deploy/k8s/base/nats.conf", "operator: /etc/nats/edge/operator.jwt\n", "authorization { users: [ {user: storefront, password: s3cret, permissions: {subscribe: [\"edge.>\"]}} ] }\n",
			[]string{"ConfigMap/nats-config", "data[nats.conf].authorization.users[0]", "storefront", "edge.>"}},
		{"k8s NATS user without subscribe limits", "deploy/k8s/base/nats.conf", "operator: /etc/nats/edge/operator.jwt\n", "authorization { users: [ {user: ops, password: s3cret, permissions: {publish: \"ops.>\"}} ] }\n",
			[]string{"data[nats.conf].authorization.users[0]", "ops"}},
		{"k8s NATS client port without TLS", "deploy/k8s/base/nats.conf", "tls {\n  cert_file: /etc/nats/tls/tls.crt\n  key_file: /etc/nats/tls/tls.key\n  timeout: 2\n}\n", "",
			[]string{"ConfigMap/nats-config", "data[nats.conf].tls", "without TLS"}},
		{"k8s NATS websocket without TLS", "deploy/k8s/base/nats.conf", "  port: 8443\n", "  port: 8443\n  no_tls: true\n",
			[]string{"data[nats.conf].websocket.tls", "without TLS"}},
		{"k8s NATS routes accepting any peer", "deploy/k8s/base/nats.conf", "verify: true", "verify: false",
			[]string{"data[nats.conf].cluster", "routes accept any peer"}},
		{"k8s NATS without its configuration", "deploy/k8s/base/nats.yaml", `args: ["--config", "/etc/nats/config/nats.conf"]`, `args: ["--jetstream"]`,
			[]string{"StatefulSet/nats", "args", "without --config"}},
		{"KEDA Kafka trigger without authentication", "deploy/k8s/base/fanout.yaml", "      authenticationRef:\n        name: kafka\n", "",
			[]string{"ScaledObject/wishlist-fanout", "authenticationRef", "missing"}},
		{"KEDA TriggerAuthentication without SASL", "deploy/k8s/base/keda-auth.yaml", "    - parameter: sasl\n", "    - parameter: sals\n",
			[]string{"TriggerAuthentication/kafka", "sals", "not a parameter"}},
		{"Dockerfile running as root", "deploy/docker/Dockerfile", "USER 65532:65532", "USER root",
			[]string{"Dockerfile", "USER"}},
		{"Dockerfile without the gateway's target", "deploy/docker/Dockerfile", "FROM runtime AS gateway", "FROM runtime AS gatewey",
			[]string{"Dockerfile", "target gateway", "no stage named gateway"}},
		{"Dockerfile not building the gateway", "deploy/docker/Dockerfile", "services/notifier/cmd/notifier services/gateway/cmd/gateway", "services/notifier/cmd/notifier",
			[]string{"Dockerfile", "target gateway", "no stage builds services/gateway/cmd/gateway"}},
		{"gateway grace period below its stop", "deploy/k8s/base/gateway.yaml", "terminationGracePeriodSeconds: 60", "terminationGracePeriodSeconds: 35",
			[]string{"Deployment/gateway", "terminationGracePeriodSeconds", "GATEWAY_STOP_TIMEOUT 30s"}},
		{"gateway stop timeout not set", "deploy/k8s/base/kustomization.yaml", "      - GATEWAY_STOP_TIMEOUT=30s\n", "",
			[]string{"Deployment/gateway", "GATEWAY_STOP_TIMEOUT is not set"}},
		{"gateway without its NATS user", "deploy/k8s/base/gateway.yaml", "            - name: NATS_CREDS\n              value: /etc/backinstock/edge/gateway.creds\n", "",
			[]string{"Deployment/gateway", "NATS_CREDS is not set"}},
		{"gateway NATS user not mounted", "deploy/k8s/base/gateway.yaml", "              mountPath: /etc/backinstock/edge\n", "              mountPath: /etc/backinstock/gw\n",
			[]string{"Deployment/gateway", "NATS_CREDS /etc/backinstock/edge/gateway.creds is on no volume mount"}},
		{"gateway env typo", "deploy/k8s/base/kustomization.yaml", "      - SMTP_TLS=starttls", "      - SMTP_TSL=starttls",
			[]string{"ConfigMap/backinstock-gateway", "SMTP_TSL", "gateway config table"}},
		{"compose region without a gateway", "deploy/compose/compose.yaml", "      <<: *gateway-env\n      REGION: ap-south-1\n", "      <<: *gateway-env\n      REGION: us-east-1\n",
			[]string{"compose.yaml", "no `gateway run` with REGION=ap-south-1"}},
		{"compose gateway without its NATS user", "deploy/compose/compose.yaml", "  NATS_CREDS: /etc/backinstock/edge/gateway.creds\n", "",
			[]string{"services.gateway-us-east-1", "environment.NATS_CREDS", "operator mode"}},
		{"compose gateway not waiting for its SMTP server", "deploy/compose/compose.yaml", "      mailpit: {condition: service_healthy}\n", "",
			[]string{"services.gateway-us-east-1", "depends_on.mailpit", "service_healthy"}},
	}
	// The baseline copy's own problems (e.g. a README not yet written) are
	// not what the cases look for.
	baseline := map[string]bool{}
	{
		root := scratchRepo(t)
		for _, p := range run(t, realOptions(t, root)) {
			baseline[strings.ReplaceAll(p.String(), root, "")] = true
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := scratchRepo(t)
			path := filepath.Join(root, tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(data), tc.old) {
				t.Fatalf("%s does not contain %q", tc.file, tc.old)
			}
			if err := os.WriteFile(path, []byte(strings.Replace(string(data), tc.old, tc.new, 1)), 0o644); err != nil {
				t.Fatal(err)
			}
			var fresh []string
			for _, p := range run(t, realOptions(t, root)) {
				s := strings.ReplaceAll(p.String(), root, "")
				if !baseline[s] {
					fresh = append(fresh, s)
				}
			}
			for _, s := range fresh {
				if containsAll(s, tc.want) {
					return
				}
			}
			t.Errorf("no new problem mentions all of %q; new problems:\n%s", tc.want, strings.Join(fresh, "\n"))
		})
	}
}

// TestOverlayWithoutAServiceFails drops the gateway from the base and from
// each overlay's replicas (kustomize itself refuses replicas of a missing
// Deployment): every overlay must then be reported as lacking it.
func TestOverlayWithoutAServiceFails(t *testing.T) {
	root := scratchRepo(t)
	edit := func(rel, old, new string) {
		t.Helper()
		path := filepath.Join(root, rel)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), old) {
			t.Fatalf("%s does not contain %q", rel, old)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	edit("deploy/k8s/base/kustomization.yaml", "  - gateway.yaml\n", "")
	overlays, _ := filepath.Glob(filepath.Join(root, "deploy/k8s/overlays/*/kustomization.yaml"))
	for _, o := range overlays {
		rel, _ := filepath.Rel(root, o)
		data, _ := os.ReadFile(o)
		i := strings.Index(string(data), "  - name: gateway\n    count: ")
		if i < 0 {
			t.Fatalf("%s sets no gateway replicas", rel)
		}
		j := i + len("  - name: gateway\n    count: ")
		j += strings.IndexByte(string(data)[j:], '\n') + 1
		edit(rel, string(data)[i:j], "")
	}
	probs := run(t, realOptions(t, root))
	for _, r := range []string{"us-east-1", "eu-west-1", "ap-south-1"} {
		found := false
		for _, p := range probs {
			found = found || containsAll(p.String(), []string{"overlays/" + r, "Deployment/gateway", "missing"})
		}
		if !found {
			t.Errorf("overlay %s without a gateway passed; problems:\n%v", r, probs)
		}
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func TestEnvFromMarkdown(t *testing.T) {
	md := "# x\n\n| env | flag | default | meaning |\n| --- | --- | --- | --- |\n" +
		"| `REDIS_URL` | `--redis-url` | `redis://127.0.0.1:6379/0` | Redis |\n" +
		"| `KAFKA_SASL_USER`, `KAFKA_SASL_PASSWORD` | | | SASL |\n\n" +
		"| method | path |\n| --- | --- |\n| `PUT` | `/v1/stock/{sku}` |\n"
	got := check.EnvFromMarkdown([]byte(md))
	want := []string{"REDIS_URL", "KAFKA_SASL_USER", "KAFKA_SASL_PASSWORD"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMetricNames(t *testing.T) {
	cases := []struct {
		expr string
		want string
	}{
		{`sum(rate(backinstock_inventory_restocks_total[$__rate_interval]))`, "backinstock_inventory_restocks_total"},
		{`histogram_quantile(0.99, sum by (le) (rate(x_seconds_bucket{region=~"$region"}[5m])))`, "x_seconds_bucket"},
		{`a > 1 and on() b{job="j"}`, "a,b"},
		{`{__name__="c_total"}`, "c_total"},
	}
	for _, tc := range cases {
		got, err := check.MetricNames(tc.expr)
		if err != nil {
			t.Fatalf("%s: %v", tc.expr, err)
		}
		if strings.Join(got, ",") != tc.want {
			t.Errorf("%s: got %v, want %s", tc.expr, got, tc.want)
		}
	}
	if !check.Exported("x_seconds_bucket", map[string]bool{"x_seconds": true}) {
		t.Error("a histogram's _bucket series is exported")
	}
}
