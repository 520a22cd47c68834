package stack_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"backinstock/deploy/devstack/internal/stack"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func freePorts(t *testing.T, n int) []int {
	ports := make([]int, n)
	for i := range ports {
		p, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	return ports
}

func TestInfraStartsAppliesCatalogAndWritesEnv(t *testing.T) {
	dir := t.TempDir()
	p := freePorts(t, 8)
	cfg := stack.Config{
		DataDir:    dir,
		KafkaPorts: []string{strconv.Itoa(p[0]), strconv.Itoa(p[1]), strconv.Itoa(p[2])},
		NATSPort:   p[3], NATSWSPort: p[4], RedisPort: p[5], MailpitSMTPPort: p[6], MailpitPort: p[7],
		InfraOnly: true, Regions: catalog.DefaultRegions,
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() { done <- stack.Run(ctx, cfg, zap.NewNop(), out) }()

	envPath := filepath.Join(dir, "devstack.env")
	testenv.Eventually(t, 60*time.Second, func() bool { _, err := os.Stat(envPath); return err == nil }, "devstack.env written")
	b, err := os.ReadFile(envPath)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	for _, k := range []string{"KAFKA_BROKERS", "REDIS_URL", "NATS_URL", "NATS_WS_URL", "API_TOKEN", "MAILPIT_URL", "MAILPIT_SMTP_ADDR", "UNSUBSCRIBE_KEYS", "CLICK_KEYS"} {
		if env[k] == "" {
			t.Errorf("devstack.env lacks %s:\n%s", k, b)
		}
	}
	if !strings.Contains(out.String(), "KAFKA_BROKERS=") {
		t.Errorf("addresses not printed: %s", out)
	}
	if want := "http://127.0.0.1:" + strconv.Itoa(p[7]); env["MAILPIT_URL"] != want {
		t.Errorf("MAILPIT_URL = %q, want %q", env["MAILPIT_URL"], want)
	}
	if resp, err := http.Get(env["MAILPIT_URL"] + "/api/v1/messages"); err != nil || resp.StatusCode != 200 {
		t.Errorf("Mailpit's API at MAILPIT_URL: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	cl, err := kafka.NewClient(kafka.Config{Brokers: strings.Split(env["KAFKA_BROKERS"], ",")})
	if err != nil {
		t.Fatal(err)
	}
	have, err := cl.Topics()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	cat, _ := catalog.Default()
	for _, name := range cat.Names() {
		found := false
		for _, h := range have {
			found = found || h == name
		}
		if !found {
			t.Errorf("topic %s missing from the stack", name)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("stack did not stop")
	}
	if b, err := os.ReadFile(filepath.Join(dir, "kafka-partitioner")); err != nil || strings.TrimSpace(string(b)) != stack.KafkaLayout {
		t.Errorf("kafka-partitioner marker: %q, %v; want %s", b, err, stack.KafkaLayout)
	}
	// The token is kept for the next run.
	tok, _ := os.ReadFile(filepath.Join(dir, "api-token"))
	if strings.TrimSpace(string(tok)) != env["API_TOKEN"] {
		t.Fatalf("token not persisted: %q vs %q", tok, env["API_TOKEN"])
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*stack.Config)
		want string
	}{
		{"bad kafka port", func(c *stack.Config) { c.KafkaPorts = []string{"x"} }, "--kafka-ports"},
		{"bad nats port", func(c *stack.Config) { c.NATSPort = 70000 }, "--nats-port"},
		{"no data dir", func(c *stack.Config) { c.DataDir = "" }, "--data-dir"},
		{"bad mailpit port", func(c *stack.Config) { c.MailpitPort = 0 }, "--mailpit-port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := stack.Config{DataDir: "d", KafkaPorts: []string{"1"}, NATSPort: 1, NATSWSPort: 2, RedisPort: 3, MailpitSMTPPort: 4, MailpitPort: 5}
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

// A port in use is refused with the flag that moves it, before anything
// starts: the stack runs only servers it owns.
func TestPortInUseIsRefused(t *testing.T) {
	tests := []struct {
		flag string
		take func(c *stack.Config) int // returns the port it takes
	}{
		{"--redis-port", func(c *stack.Config) int { return c.RedisPort }},
		{"--nats-port", func(c *stack.Config) int { return c.NATSPort }},
		{"--nats-ws-port", func(c *stack.Config) int { return c.NATSWSPort }},
		{"--kafka-ports", func(c *stack.Config) int { p, _ := strconv.Atoi(c.KafkaPorts[1]); return p }},
		{"--mailpit-smtp-port", func(c *stack.Config) int { return c.MailpitSMTPPort }},
		{"--mailpit-port", func(c *stack.Config) int { return c.MailpitPort }},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			p := freePorts(t, 8)
			cfg := stack.Config{
				DataDir:    t.TempDir(),
				KafkaPorts: []string{strconv.Itoa(p[0]), strconv.Itoa(p[1]), strconv.Itoa(p[2])},
				NATSPort:   p[3], NATSWSPort: p[4], RedisPort: p[5], MailpitSMTPPort: p[6], MailpitPort: p[7],
				InfraOnly: true, Regions: catalog.DefaultRegions,
			}
			port := tt.take(&cfg)
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			in, err := stack.StartInfra(context.Background(), cfg, zap.NewNop())
			if err == nil {
				in.Close()
				t.Fatal("started on a port in use")
			}
			if !strings.Contains(err.Error(), tt.flag) || !strings.Contains(err.Error(), strconv.Itoa(port)) {
				t.Fatalf("error %q does not name %s and port %d", err, tt.flag, port)
			}
		})
	}
}

// A data dir whose Kafka logs were written with the old FNV-1a partitioner
// is refused before anything starts or is written, with how to start
// afresh; one marked murmur2 goes on (here to the port check, whose
// refusal shows the layout check passed).
func TestOldKafkaLayoutIsRefused(t *testing.T) {
	p := freePorts(t, 8)
	config := func(dir string) stack.Config {
		return stack.Config{
			DataDir:    dir,
			KafkaPorts: []string{strconv.Itoa(p[0]), strconv.Itoa(p[1]), strconv.Itoa(p[2])},
			NATSPort:   p[3], NATSWSPort: p[4], RedisPort: p[5], MailpitSMTPPort: p[6], MailpitPort: p[7],
			InfraOnly: true, Regions: catalog.DefaultRegions,
		}
	}
	withKafkaData := func(t *testing.T, marker string) string {
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, "kafka", "wishlist.changes.v1-0"), 0o755); err != nil {
			t.Fatal(err)
		}
		if marker != "" {
			if err := os.WriteFile(filepath.Join(dir, "kafka-partitioner"), []byte(marker+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tt := range []struct{ name, marker, want string }{
		{"no marker", "", "before the producers partitioned keys with murmur2"},
		{"another partitioner", "fnv1a", `partitioner "fnv1a"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := withKafkaData(t, tt.marker)
			in, err := stack.StartInfra(context.Background(), config(dir), zap.NewNop())
			if err == nil {
				in.Close()
				t.Fatal("started on a data dir of the old layout")
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "rm -rf "+dir) {
				t.Fatalf("error %q does not say %q and how to start afresh", err, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "api-token")); err == nil {
				t.Fatal("the refused data dir was written to")
			}
		})
	}
	t.Run("murmur2 marker", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p[5]))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		in, err := stack.StartInfra(context.Background(), config(withKafkaData(t, stack.KafkaLayout)), zap.NewNop())
		if err == nil {
			in.Close()
			t.Fatal("started on a port in use")
		}
		if !strings.Contains(err.Error(), "--redis-port") {
			t.Fatalf("got %q, want the port check's refusal (the layout check passed)", err)
		}
	})
}
