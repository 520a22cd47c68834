package app_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// buildWishlist compiles the real command without -race, so the large
// fan-out runs at production speed in a child process.
func buildWishlist(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "wishlist")
	cmd := exec.Command("go", "build", "-o", bin, "../cmd/wishlist")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func childEnv(kcfg kafka.Config, redisURL string) []string {
	return append(os.Environ(), "KAFKA_BROKERS="+strings.Join(kcfg.Brokers, ","), "REDIS_URL="+redisURL,
		"REGIONS=us-east-1,eu-west-1,ap-south-1", "LOG_LEVEL=warn", "METRICS_ADDR=127.0.0.1:0")
}

// TestFanoutResumesAfterSIGKILL stops the real fan-out worker gracefully in
// the middle of a 200,000-wishlister fan-out (everything sent is
// checkpointed), restarts it, kills it (SIGKILL) further on and restarts it
// again: every (user, channel)
// request is in the notify topics, the duplicates are exactly the records
// the killed worker produced past its last checkpoint and stay under the
// bound segments × (in-flight pages + 1) × page size × channels, and the
// restart did not begin from the first wishlister. It runs with one cursor
// and with four segments paged at once (each checkpointed on its own).
func TestFanoutResumesAfterSIGKILL(t *testing.T) {
	bin := buildWishlist(t)
	for _, par := range []int{1, 4} {
		t.Run(fmt.Sprintf("parallelism=%d", par), func(t *testing.T) { fanoutResumesAfterSIGKILL(t, bin, par) })
	}
}

func fanoutResumesAfterSIGKILL(t *testing.T, bin string, parallelism int) {
	const (
		users    = 200_000
		pageSize = 2000
		inFlight = 2
		maxChans = 2
	)
	kcfg := privateKafka(t)
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	sku := testenv.Unique(t, "big")
	region := "us-east-1"

	// Every tenth user wants email too: 220,000 requests in all.
	file := filepath.Join(t.TempDir(), "wishlist.ndjson")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	want := map[string]bool{}
	for i := range users {
		u := fmt.Sprintf("u%06d", i)
		chans := `["app"]`
		want[u+"/app"] = true
		if i%10 == 0 {
			chans = `["app","email"]`
			want[u+"/email"] = true
		}
		fmt.Fprintf(w, `{"user_id":%q,"sku":%q,"region":%q,"channels":%s}`+"\n", u, sku, region, chans)
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}
	imp := exec.Command(bin, "import", "--file", file)
	imp.Env = childEnv(kcfg, r.URL())
	out, err := imp.Output()
	if err != nil {
		t.Fatalf("wishlist import: %v", err)
	}
	var res struct{ Imported, Rejected int64 }
	if err := json.Unmarshal(out, &res); err != nil || res.Imported != users {
		t.Fatalf("import result %s: %v", out, err)
	}

	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "fanout", "--region", region, "--page-size", fmt.Sprint(pageSize), "--in-flight-pages", fmt.Sprint(inFlight),
			"--parallelism", fmt.Sprint(parallelism))
		cmd.Env = childEnv(kcfg, r.URL())
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	worker := start()
	t.Cleanup(func() { _ = worker.Process.Kill(); _, _ = worker.Process.Wait() })
	ev := restock(sku, region, 1, 100, nil)
	produceEvent(t, kcfg, catalog.Restock, sku, ev)

	cl := newClient(t, kcfg)
	topics := []string{catalog.Notify(region, "app"), catalog.Notify(region, "email")}
	total := int64(len(want))
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()

	// A graceful stop in the middle (SIGTERM) waits for the acks of what was
	// sent and checkpoints it: nothing is produced past the checkpoint.
	testenv.Eventually(t, 120*time.Second, func() bool { return endOffsets(t, cl, topics...) >= 20_000 }, "20k notifications before SIGTERM")
	if err := worker.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := waitExit(worker, 60*time.Second); err != nil {
		t.Fatalf("worker after SIGTERM: %v", err)
	}
	stopped := endOffsets(t, cl, topics...)
	if ck := checkpoint(t, rdb, ev.EventID, region); ck.Done || ck.Records != stopped {
		t.Fatalf("after SIGTERM: %d records produced, checkpoint %+v (want every produced record checkpointed)", stopped, ck)
	}
	if ck := checkpoint(t, rdb, ev.EventID, region); parallelism > 1 && (ck.Round == nil || ck.Round.Segments != parallelism) {
		t.Fatalf("after SIGTERM: checkpoint %+v, want a round of %d segments in progress", ck, parallelism)
	}

	worker = start()
	testenv.Eventually(t, 120*time.Second, func() bool { return endOffsets(t, cl, topics...) >= stopped+40_000 }, "40k more notifications before the kill")
	if err := worker.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = worker.Process.Wait()
	beforeKill := endOffsets(t, cl, topics...)
	ck := checkpoint(t, rdb, ev.EventID, region)
	if ck.Done || beforeKill >= total || ck.Records == 0 {
		t.Fatalf("the kill was not in the middle: %d of %d produced, checkpoint %+v", beforeKill, total, ck)
	}
	t.Logf("killed with %d records produced, checkpoint at %d users / %d records", beforeKill, ck.Users, ck.Records)

	worker = start()
	waitDone(t, rdb, ev.EventID, region, 180*time.Second)
	after := endOffsets(t, cl, topics...)

	counts := make(map[string]int, len(want))
	for _, topic := range topics {
		ch := strings.Split(topic, ".")[2]
		testenv.ReadTopic(t, cl, topic, func(m *sarama.ConsumerMessage) {
			counts[string(m.Key)+"/"+ch]++
		})
	}
	var missing, dups int64
	for k := range want {
		switch n := counts[k]; {
		case n == 0:
			missing++
		case n > 1:
			dups += int64(n - 1)
		}
	}
	if missing > 0 || int64(len(counts)) != total {
		t.Fatalf("%d of %d (user, channel) requests missing; %d distinct present", missing, total, len(counts))
	}
	bound := int64(parallelism * (inFlight + 1) * pageSize * maxChans)
	t.Logf("after restart: %d records produced by the second run, %d duplicates (bound %d)", after-beforeKill, dups, bound)
	if dups > bound {
		t.Fatalf("%d duplicates, more than the checkpoint bound %d", dups, bound)
	}
	if dups != beforeKill-ck.Records {
		t.Fatalf("%d duplicates, want exactly the %d records produced past the checkpoint", dups, beforeKill-ck.Records)
	}
	if after-beforeKill != total-ck.Records || after-beforeKill >= total {
		t.Fatalf("the restart produced %d records; resuming from the checkpoint means %d (starting over: %d)", after-beforeKill, total-ck.Records, total)
	}
	_ = worker.Process.Signal(syscall.SIGTERM)
	if err := waitExit(worker, 60*time.Second); err != nil {
		t.Errorf("worker exit after SIGTERM: %v", err)
	}
}

// waitExit waits for cmd to exit; a non-zero exit is an error.
func waitExit(cmd *exec.Cmd, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not exit within %s", timeout)
	}
}
