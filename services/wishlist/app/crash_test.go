package app_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"backinstock/services/wishlist/internal/store"
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
	// 200,000 wishlisters in segments of at least 20,000 (the default).
	if ck := checkpoint(t, rdb, ev.EventID, region); parallelism > 1 && (ck.Round == nil || ck.Round.Segments != users/20_000) {
		t.Fatalf("after SIGTERM: checkpoint %+v, want a round of %d segments in progress", ck, users/20_000)
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

// TestTwoProcessesShareOneRestock runs two real fan-out processes of one
// region: the restock's segments are paged by both (the one whose partition
// holds the restock and the other through the open-rounds registry), every
// request exactly once. Then one is killed (SIGKILL) while it pages a
// segment of a second restock: the survivor takes its segments over once
// their leases run out (10 s) — or the restock itself after the group
// rebalances — and finishes within a minute, nothing missing, the
// duplicates within what the killed process had in flight. Last, a third
// process is paused (SIGSTOP) past the lease while paging and resumed: its
// segments are taken over, its late checkpoints refused, every wishlister
// counted once.
func TestTwoProcessesShareOneRestock(t *testing.T) {
	const (
		users       = 60_000
		pageSize    = 500
		inFlight    = 2
		parallelism = 2
		segmentMin  = 2000
	)
	bin := buildWishlist(t)
	kcfg := privateKafka(t)
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	region := "eu-west-1"
	skus := []string{testenv.Unique(t, "shared"), testenv.Unique(t, "killed"), testenv.Unique(t, "paused")}

	file := filepath.Join(t.TempDir(), "wishlist.ndjson")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	for _, sku := range skus {
		for i := range users {
			fmt.Fprintf(w, `{"user_id":"u%06d","sku":%q,"region":%q,"channels":["app"]}`+"\n", i, sku, region)
		}
	}
	if err := errors.Join(w.Flush(), f.Close()); err != nil {
		t.Fatal(err)
	}
	imp := exec.Command(bin, "import", "--file", file)
	imp.Env = childEnv(kcfg, r.URL())
	if out, err := imp.Output(); err != nil {
		t.Fatalf("wishlist import: %v %s", err, out)
	}

	type worker struct {
		cmd     *exec.Cmd
		metrics string
	}
	start := func() worker {
		port, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		cmd := exec.Command(bin, "fanout", "--region", region, "--page-size", fmt.Sprint(pageSize), "--in-flight-pages", fmt.Sprint(inFlight),
			"--parallelism", fmt.Sprint(parallelism), "--segment-min", fmt.Sprint(segmentMin), "--metrics-addr", addr)
		cmd.Env = childEnv(kcfg, r.URL())
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return worker{cmd: cmd, metrics: "http://" + addr + "/metrics"}
	}
	// metric reads a series of a worker's /metrics (0 when absent).
	metric := func(wk worker, series string) float64 {
		resp, err := http.Get(wk.metrics)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		var sum float64
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, series) {
				var v float64
				if _, err := fmt.Sscan(line[strings.LastIndexByte(line, ' ')+1:], &v); err == nil {
					sum += v
				}
			}
		}
		return sum
	}
	a, b := start(), start()
	for _, wk := range []worker{a, b} {
		testenv.Eventually(t, 30*time.Second, func() bool { _, err := http.Get(wk.metrics); return err == nil }, "worker metrics up")
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	cl := newClient(t, kcfg)
	topic := catalog.Notify(region, "app")
	count := func() map[string]int {
		counts := map[string]int{}
		testenv.ReadTopic(t, cl, topic, func(m *sarama.ConsumerMessage) { counts[string(m.Key)]++ })
		return counts
	}

	// One restock, two processes: both page its segments.
	ev := restock(skus[0], region, 1, 100, nil)
	produceEvent(t, kcfg, catalog.Restock, skus[0], ev)
	waitDone(t, rdb, ev.EventID, region, 60*time.Second)
	const done = "backinstock_wishlist_fanout_segments_total"
	da, db := metric(a, done), metric(b, done)
	t.Logf("segments done: %v by one process, %v by the other", da, db)
	if da == 0 || db == 0 {
		t.Fatalf("segments done %v and %v: want both processes to page some", da, db)
	}
	counts := count()
	for i := range users {
		if n := counts[fmt.Sprintf("u%06d", i)]; n != 1 {
			t.Fatalf("u%06d notified %d times, want once", i, n)
		}
	}
	first := int64(users)

	// A second restock; b dies while it pages a segment.
	ev = restock(skus[1], region, 1, 100, nil)
	produceEvent(t, kcfg, catalog.Restock, skus[1], ev)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return metric(b, "backinstock_wishlist_fanout_segments_in_progress") > 0
	}, "the second process paging a segment")
	if err := b.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = b.cmd.Process.Wait()
	killed := time.Now()
	waitDone(t, rdb, ev.EventID, region, 60*time.Second)
	t.Logf("the survivor finished %s after the kill", time.Since(killed).Round(time.Millisecond))

	counts = count()
	var dups int64
	for i := range users {
		switch n := counts[fmt.Sprintf("u%06d", i)]; {
		case n < 2:
			t.Fatalf("u%06d: %d notifications in all, want one per restock", i, n)
		case n > 2:
			dups += int64(n - 2)
		}
	}
	var total int64
	for _, n := range counts {
		total += int64(n)
	}
	// The killed process had at most parallelism segments in flight, each
	// at most (in-flight pages + 1) pages past its checkpoint.
	bound := int64(parallelism * (inFlight + 1) * pageSize)
	t.Logf("%d records for %d requests, %d duplicates (bound %d)", total, first+users, dups, bound)
	if dups > bound || total != first+users+dups {
		t.Fatalf("%d duplicates (%d records in all), bound %d", dups, total, bound)
	}
	if ck := checkpoint(t, rdb, ev.EventID, region); ck.Users != users {
		t.Fatalf("second restock's checkpoint counts %d wishlisters, want %d", ck.Users, users)
	}

	// A third restock; a new process c is paused (SIGSTOP) past the lease
	// while it pages a segment, then resumed: a takes its segments over
	// where their checkpoints stopped, and c's late checkpoints are refused
	// (the lease fences them), so the round folds each wishlister once.
	c := start()
	testenv.Eventually(t, 30*time.Second, func() bool { _, err := http.Get(c.metrics); return err == nil }, "third worker metrics up")
	before := total
	aDone := metric(a, done)
	ev = restock(skus[2], region, 1, 100, nil)
	produceEvent(t, kcfg, catalog.Restock, skus[2], ev)
	testenv.Eventually(t, 30*time.Second, func() bool {
		return metric(c, "backinstock_wishlist_fanout_segments_in_progress") > 0
	}, "the third process paging a segment")
	if err := c.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(13 * time.Second)
	if err := c.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	ck := waitDone(t, rdb, ev.EventID, region, 60*time.Second)
	t.Logf("the third restock finished %s after the resume", time.Since(resumed).Round(time.Millisecond))
	if ck.Users != users {
		t.Fatalf("third restock's checkpoint counts %d wishlisters, want %d (a stale checkpoint moved a segment)", ck.Users, users)
	}
	// Each segment finished once, by a or by c: c, resumed, neither
	// finishes a segment a took over nor takes its lease back.
	testenv.Eventually(t, 30*time.Second, func() bool {
		return metric(c, "backinstock_wishlist_fanout_segments_in_progress") == 0
	}, "the resumed process done with its segments")
	byA, byC := metric(a, done)-aDone, metric(c, done)
	t.Logf("third restock's segments finished: %v by a, %v by c", byA, byC)
	if byA+byC != users/segmentMin {
		t.Fatalf("segments finished %v + %v times, want each of the %d once", byA, byC, users/segmentMin)
	}
	if n := rdb.Exists(context.Background(), store.SegmentsKey(ev.EventID, region)).Val(); n != 0 {
		t.Fatal("the folded round's segments are back: a stale checkpoint was written after the fold")
	}
	counts = count()
	total, dups = 0, 0
	for i := range users {
		switch n := counts[fmt.Sprintf("u%06d", i)]; {
		case n < 3:
			t.Fatalf("u%06d: %d notifications in all, want one per restock", i, n)
		case n > 3:
			dups += int64(n - 3)
		}
	}
	for _, n := range counts {
		total += int64(n)
	}
	// What c produced past its checkpoints: in flight at the pause, and
	// after the resume until its first refused checkpoint stopped it.
	dups -= before - first - users // the second restock's, counted above
	bound = int64(parallelism * (inFlight + 2) * pageSize)
	t.Logf("third restock: %d records, %d duplicates (bound %d)", total-before, dups, bound)
	if dups > bound || total-before != users+dups {
		t.Fatalf("third restock: %d duplicates (%d records), bound %d", dups, total-before, bound)
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(c.cmd, 60*time.Second); err != nil {
		t.Errorf("paused worker's exit after SIGTERM: %v", err)
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
