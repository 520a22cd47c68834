package app_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// checkOnce asserts that each sku's restock events are exactly the episodes
// the API answered, once each.
func checkOnce(t *testing.T, got []events.RestockEvent, want map[string][]int64) {
	t.Helper()
	seen := map[string]int{}
	per := map[string][]int64{}
	for _, ev := range got {
		seen[ev.EventID]++
		per[ev.SKU] = append(per[ev.SKU], ev.Episode)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s arrived %d times", id, n)
		}
	}
	for sku, eps := range want {
		if fmt.Sprint(per[sku]) != fmt.Sprint(eps) {
			t.Errorf("sku %s: episodes in Kafka %v, answered %v", sku, per[sku], eps)
		}
	}
	if len(per) != len(want) {
		t.Errorf("restocks for %d skus, want %d", len(per), len(want))
	}
}

// TestKafkaDownDuringBurst: with the (private, one-broker) cluster closed,
// every write still answers 2xx and /readyz reports the backlog; once the
// cluster is back on the same port, every restock arrives exactly once.
// The outage is a real one (listeners closed), not an injected error.
func TestKafkaDownDuringBurst(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	k, err := testenv.StartKafka(1, kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	applyCatalog(t, k.Brokers, 1)
	url, rdb := freshRedisURL(t)
	cfg := testConfig(t, url, k.Brokers)
	cfg.OutboxMaxAge = 300 * time.Millisecond
	svc := start(t, cfg)
	warm := testenv.Unique(t, "warm")
	put(t, svc.URL, warm, "us-east-1", 5)
	testenv.Eventually(t, 20*time.Second, func() bool { return backlog(t, rdb) == 0 }, "relay connected")

	k.Close()
	p := testenv.Unique(t, "burst")
	want := map[string][]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			sku := fmt.Sprintf("%s-%d", p, i)
			for _, q := range []int64{0, 5, 0, 3, 7, 0, 2} {
				r := put(t, svc.URL, sku, "eu-west-1", q) // fails the test unless 200
				if r.Restock {
					mu.Lock()
					want[sku] = append(want[sku], r.Episode)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	testenv.Eventually(t, 20*time.Second, func() bool {
		code, body, _ := do(t, "GET", svc.URL+"/readyz", "", nil)
		// Still ready (the API keeps taking writes), with the backlog reported.
		return code == http.StatusOK && strings.Contains(string(body), "degraded: outbox backlog")
	}, "readyz reports the backlog")
	if backlog(t, rdb) < 20*3 {
		t.Fatalf("backlog %d while Kafka is down", backlog(t, rdb))
	}
	code, _, _ := do(t, "PUT", svc.URL+"/v1/stock/"+p+"-late", token, `{"region":"eu-west-1","quantity":1}`)
	if code != 200 {
		t.Fatalf("write during outage: %d", code)
	}
	want[p+"-late"] = []int64{1}

	k2, err := testenv.StartKafka(1, kfake.Ports(port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k2.Close)
	applied.Delete(strings.Join(k2.Brokers, ","))
	applyCatalog(t, k2.Brokers, 1)
	restocks := collect(t, k2.Brokers, catalog.Restock)
	settle(t, rdb, restocks)
	checkOnce(t, restocks.restocks(t, p), want)
	testenv.Eventually(t, 10*time.Second, func() bool {
		code, body, _ := do(t, "GET", svc.URL+"/readyz", "", nil)
		return code == http.StatusOK && !strings.Contains(string(body), "degraded")
	}, "backlog drained")
	svc.Stop(t) // stops its producer before the cluster closes
}

// buildBinary builds cmd/inventory (without -race) into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "inventory")
	cmd := exec.Command("go", "build", "-o", bin, "backinstock/services/inventory/cmd/inventory")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

type child struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

// runChild starts the binary and waits until it answers /healthz.
func runChild(t *testing.T, bin string, env ...string) *child {
	t.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{"HTTP_ADDR=" + addr, "API_TOKEN=" + token, "LOG_LEVEL=warn", "RELAY_LEASE_TTL=1s"}, env...)...)
	logf, err := os.Create(filepath.Join(t.TempDir(), "inventory.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, url: "http://" + addr, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(c.done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-c.done })
	testenv.Eventually(t, 30*time.Second, func() bool {
		select {
		case <-c.done:
			out, _ := os.ReadFile(logf.Name())
			t.Fatalf("inventory exited: %s", out)
		default:
		}
		resp, err := http.Get(c.url + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}, "inventory up")
	return c
}

// TestSIGKILLAfterAnswer: the process is killed with SIGKILL right after it
// answered 2xx; after a restart every restock it answered arrives once. With
// the relay off in the first life the entries are certainly unpublished at
// the kill; with it on, the kill lands wherever the relay is (reading,
// producing, between the ack and the trim) and the restart's look into
// Kafka keeps the already-published ones from arriving twice.
func TestSIGKILLAfterAnswer(t *testing.T) {
	bin := buildBinary(t)
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "API_TOKEN") {
		t.Fatalf("--help: %v\n%s", err, out)
	}
	k := env.Kafka(t)
	applyCatalog(t, k.Brokers, 3)
	restocks := collect(t, k.Brokers, catalog.Restock)
	for _, relayFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("relay=%v", relayFirst), func(t *testing.T) {
			url, rdb := freshRedisURL(t)
			common := []string{"REDIS_URL=" + url, "KAFKA_BROKERS=" + k.BrokerList()}
			p := testenv.Unique(t, "kill")
			want := map[string][]int64{}
			for round := range 3 {
				c := runChild(t, bin, append(common, fmt.Sprintf("RELAY_ENABLED=%v", relayFirst))...)
				var ups []string
				for i := range 200 {
					q := 1 + round%2*4
					if round == 1 {
						q = 0
					}
					ups = append(ups, fmt.Sprintf(`{"sku":"%s-%d","region":"us-east-1","quantity":%d}`, p, i, q))
				}
				code, body, _ := do(t, "POST", c.url+"/v1/stock", token, `{"updates":[`+strings.Join(ups, ",")+`]}`)
				if code != 200 {
					t.Fatalf("bulk: %d %s", code, body)
				}
				if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				<-c.done
				if strings.Contains(string(body), `"restock":true`) {
					for i := range 200 {
						sku := fmt.Sprintf("%s-%d", p, i)
						want[sku] = append(want[sku], int64(len(want[sku])+1))
					}
				}
			}
			c := runChild(t, bin, append(common, "RELAY_ENABLED=true")...)
			settle(t, rdb, restocks)
			checkOnce(t, restocks.restocks(t, p), want)
			if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			<-c.done
			if c.cmd.ProcessState.ExitCode() != 0 {
				t.Fatalf("exit code %d after SIGTERM", c.cmd.ProcessState.ExitCode())
			}
		})
	}
}
