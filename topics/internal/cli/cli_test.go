package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"backinstock/topics"
	"backinstock/topics/internal/cli"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := cli.Run(t.Context(), args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// isolate keeps the caller's Kafka environment out of the test.
func isolate(t *testing.T) {
	for _, k := range []string{"KAFKA_BROKERS", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USER", "KAFKA_SASL_PASSWORD", "KAFKA_TLS", "KAFKA_TLS_CA_FILE", "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE", "KAFKA_TLS_SKIP_VERIFY"} {
		t.Setenv(k, "")
	}
}

func cluster(t *testing.T, n int) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(n))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "catalog.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUsage(t *testing.T) {
	isolate(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, cli.ExitOK, "Usage: topics <command>"},
		{[]string{"help"}, cli.ExitOK, "Usage: topics <command>"},
		{nil, cli.ExitUsage, "Usage: topics <command>"},
		{[]string{"frobnicate"}, cli.ExitUsage, `unknown command "frobnicate"`},
		{[]string{"validate", "--help"}, cli.ExitOK, "Usage: topics validate"},
		{[]string{"plan", "--help"}, cli.ExitOK, "Usage: topics plan"},
		{[]string{"plan", "-h"}, cli.ExitOK, "-exit-code"},
		{[]string{"apply", "--help"}, cli.ExitOK, "-allow-delete"},
		{[]string{"list", "--help"}, cli.ExitOK, "Usage: topics list"},
		{[]string{"plan", "--no-such-flag"}, cli.ExitUsage, "flag provided but not defined"},
		{[]string{"validate", "extra"}, cli.ExitUsage, "unexpected arguments: extra"},
		{[]string{"plan", "--brokers", "no-port"}, cli.ExitUsage, `"no-port" is not host:port`},
	}
	for _, tt := range tests {
		r := run(t, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.want) {
			t.Errorf("topics %v: exit %d, output %q; want exit %d and %q", tt.args, r.code, r.stdout+r.stderr, tt.code, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	isolate(t)
	r := run(t, "validate")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "catalogue ok: 19 topics") || !strings.Contains(r.stdout, "notify.ap-south-1.sms.v1") {
		t.Fatalf("validate: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	bad := writeFile(t, `topics:
  - name: Inventory.Restock.v1
    description: d
    partitions: 0
    replication_factor: 1
    key: sku
    value: RestockEvent
    configs:
      cleanup.policy: compacted
`)
	r = run(t, "validate", "--file", bad)
	for _, w := range []string{`topic "Inventory.Restock.v1": name: must be lowercase`, "partitions: must be between 1", `configs.cleanup.policy: must be one of`} {
		if r.code != cli.ExitError || !strings.Contains(r.stderr, w) {
			t.Errorf("validate bad file: exit %d, stderr %q; want exit 1 and %q", r.code, r.stderr, w)
		}
	}
	if r := run(t, "validate", "--file", filepath.Join(t.TempDir(), "missing.yaml")); r.code != cli.ExitError || !strings.Contains(r.stderr, "read catalogue") {
		t.Errorf("validate missing file: exit %d, %q", r.code, r.stderr)
	}
}

func TestPlanApplyListEndToEnd(t *testing.T) {
	isolate(t)
	brokers := cluster(t, 3)

	r := run(t, "plan", "--brokers", brokers, "--exit-code")
	if r.code != cli.ExitChanges || strings.Count(r.stdout, "+ create ") != 19 || !strings.Contains(r.stdout, "+ create inventory.restock.v1: partitions=12 replication=3") {
		t.Fatalf("first plan: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "apply", "--brokers", brokers)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "applied 19 changes") {
		t.Fatalf("apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "plan", "--brokers", brokers, "--exit-code")
	if r.code != cli.ExitOK || r.stdout != "no changes\n" {
		t.Fatalf("plan after apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = run(t, "apply", "--brokers", brokers)
	if r.code != cli.ExitOK || r.stdout != "no changes\n" {
		t.Fatalf("second apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = run(t, "list", "--brokers", brokers)
	if r.code != cli.ExitOK {
		t.Fatalf("list: exit %d\n%s", r.code, r.stderr)
	}
	for _, w := range []string{"TOPIC", "wishlist.changes.v1", "cleanup.policy=compact", "notify.eu-west-1.web.v1", "retention.ms=604800000"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("list output lacks %q:\n%s", w, r.stdout)
		}
	}

	// A catalogue file that grows one topic plans exactly that; one that
	// shrinks it is refused naming the topic.
	grown := strings.Replace(string(topics.CatalogYAML), "partitions: 3\n", "partitions: 6\n", 1)
	r = run(t, "plan", "--brokers", brokers, "--file", writeFile(t, grown), "--exit-code")
	if r.code != cli.ExitChanges || r.stdout != "~ grow deadletter.v1: partitions 3 -> 6\n" {
		t.Fatalf("plan of a grown catalogue: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	shrunk := strings.Replace(string(topics.CatalogYAML), "partitions: 3\n", "partitions: 1\n", 1)
	r = run(t, "apply", "--brokers", brokers, "--file", writeFile(t, shrunk))
	if r.code != cli.ExitError || !strings.Contains(r.stderr, "topic deadletter.v1: partitions: the cluster has 3, the catalogue 1") {
		t.Fatalf("apply of a shrunk catalogue: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestUnreachableCluster(t *testing.T) {
	isolate(t)
	r := run(t, "list", "--brokers", "127.0.0.1:1")
	if r.code != cli.ExitError || !strings.Contains(r.stderr, "topics list: connect to kafka 127.0.0.1:1") {
		t.Fatalf("list against nothing: exit %d\n%s", r.code, r.stderr)
	}
}

func TestFitCluster(t *testing.T) {
	isolate(t)
	brokers := cluster(t, 1)
	t.Setenv("KAFKA_BROKERS", brokers) // the environment works as well as --brokers

	if r := run(t, "apply"); r.code != cli.ExitError || !strings.Contains(r.stderr, "create topic inventory.restock.v1:") {
		t.Fatalf("apply replication 3 on one broker: exit %d\n%s", r.code, r.stderr)
	}
	if r := run(t, "apply", "--fit-cluster"); r.code != cli.ExitOK {
		t.Fatalf("apply --fit-cluster: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, "plan", "--fit-cluster", "--exit-code"); r.code != cli.ExitOK || r.stdout != "no changes\n" {
		t.Fatalf("plan --fit-cluster after apply: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
