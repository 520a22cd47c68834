// Package bench is the end-to-end benchmark of the whole pipeline on this
// machine: the real binaries as processes (scripts/internal/e2eenv), a restock of one
// sku with a million wishlisters timed from the inventory API call to the
// last notification acknowledged by the edge stream, and the latency from the
// API call to the first edge delivery for a small sku.
package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"backinstock/scripts/internal/e2eenv"
	"backinstock/shared/kafka"
	"backinstock/shared/proccpu"
	"backinstock/topics/catalog"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

// Options size the benchmark.
type Options struct {
	Dir    string
	BinDir string
	Region string
	// Users wishlist the big sku, one channel each (round robin over the
	// four), so Users notifications reach the edge.
	Users int
	// Restocks of the small sku (SmallUsers wishlisters) for the latency.
	Restocks   int
	SmallUsers int
	// Verify reads the whole edge stream after the big restock and checks
	// every notification is there exactly once.
	Verify bool
	// Parallelism is the fan-out's FANOUT_PARALLELISM (0: its default);
	// Replicas the region's fan-out workers and notifiers (0 or 1: one
	// each; e2eenv scales them together).
	Parallelism int
	Replicas    int
	Log         e2eenv.Logger
}

// Result holds the figures.
type Result struct {
	Users         int
	ImportTime    time.Duration
	FirstDelivery time.Duration
	// Produced is when the fan-out had all notification requests in Kafka
	// (the notify topics' end offsets), to tell the fan-out's share of Total.
	Produced  time.Duration
	Total     time.Duration
	Delivered uint64
	Counts    *e2eenv.Counts
	// CPU is what each process spent during the big restock.
	CPU *proccpu.Use

	Restocks  int
	Latencies []time.Duration
	P50, P99  time.Duration
	Max       time.Duration
}

// Rate is notifications per second of the big restock.
func (r Result) Rate() float64 { return float64(r.Delivered) / r.Total.Seconds() }

// Run starts the stack, loads the data, measures and stops the stack.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	res := Result{Users: o.Users, Restocks: o.Restocks}
	eo := e2eenv.Options{Dir: o.Dir, BinDir: o.BinDir, Log: o.Log, ServiceEnv: map[string][]string{}}
	if o.Parallelism > 0 {
		eo.ServiceEnv["fanout-"+o.Region] = []string{fmt.Sprintf("FANOUT_PARALLELISM=%d", o.Parallelism)}
	}
	st, err := e2eenv.Start(ctx, eo)
	if err != nil {
		return res, err
	}
	defer st.Close()
	if o.Replicas > 1 {
		if err := st.Scale(ctx, o.Region, o.Replicas); err != nil {
			return res, err
		}
	}
	edge, err := st.ConnectEdge()
	if err != nil {
		return res, err
	}
	defer edge.Close()
	if err := bigRestock(ctx, st, edge, o, &res); err != nil {
		return res, fmt.Errorf("%w\n%s", err, st.Logs(20))
	}
	if o.Restocks > 0 {
		if err := latency(ctx, st, edge, o, &res); err != nil {
			return res, fmt.Errorf("%w\n%s", err, st.Logs(20))
		}
	}
	return res, nil
}

// importFile writes the NDJSON of the big sku and loads it with the
// service's own `wishlist import` command, so the store layout stays the
// service's.
func importFile(ctx context.Context, st *e2eenv.Stack, o Options, sku string) error {
	path := filepath.Join(o.Dir, "wishlisters.ndjson")
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	chans := events.ChannelNames()
	for i := range o.Users {
		fmt.Fprintf(w, `{"user_id":"b%07d","sku":%q,"region":%q,"channels":[%q]}`+"\n", i, sku, o.Region, chans[i%len(chans)])
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(st.BinDir, "wishlist"), "import", "--file", path)
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+st.Kafka.BrokerList(), "REDIS_URL="+st.Redis.URL(),
		"REGIONS="+strings.Join(st.Regions, ","), "LOG_LEVEL=warn")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("wishlist import: %w\n%s", err, out)
	}
	return os.Remove(path)
}

// redisPID finds the redis-server listening on the stack's port by its
// command line (testenv does not expose the process).
func redisPID(st *e2eenv.Stack) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, "redis-server") && strings.Contains(cmd, st.Redis.Addr) {
			return pid
		}
	}
	return 0
}

// notifyEnd sums the end offsets of the region's notify topics.
func notifyEnd(cl sarama.Client, region string) (int64, error) {
	var sum int64
	for _, ch := range events.ChannelNames() {
		topic := catalog.Notify(region, ch)
		parts, err := cl.Partitions(topic)
		if err != nil {
			return 0, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, p := range parts {
			end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return 0, fmt.Errorf("end offset of %s/%d: %w", topic, p, err)
			}
			sum += end
		}
	}
	return sum, nil
}

func bigRestock(ctx context.Context, st *e2eenv.Stack, edge *e2eenv.Edge, o Options, res *Result) error {
	sku := "bench-big"
	t0 := time.Now()
	if err := importFile(ctx, st, o, sku); err != nil {
		return err
	}
	res.ImportTime = time.Since(t0)
	n, err := st.Client().Wishlisters(ctx, sku, o.Region)
	if err != nil {
		return err
	}
	if n != int64(o.Users) {
		return fmt.Errorf("wishlisters of %s after import: %d, want %d", sku, n, o.Users)
	}
	o.Log.Logf("imported %d wishlisters in %s", o.Users, res.ImportTime.Round(time.Millisecond))

	_, base, err := edge.State(ctx, o.Region)
	if err != nil {
		return err
	}
	kc, err := kafka.NewClient(kafka.Config{Brokers: st.Kafka.Brokers, ClientID: "e2ebench"})
	if err != nil {
		return err
	}
	defer kc.Close()
	kbase, err := notifyEnd(kc, o.Region)
	if err != nil {
		return err
	}
	// A live subscription sees the first delivery; the stream's last
	// sequence counts what the edge acknowledged.
	first := make(chan time.Time, 1)
	sub, err := edge.NC.Subscribe(topicsedge.RegionFilter(o.Region), func(*nats.Msg) {
		select {
		case first <- time.Now():
		default:
		}
	})
	if err != nil {
		return err
	}
	pids := map[string]int{"driver (kfake, nats-server)": os.Getpid(), "redis-server": redisPID(st)}
	for _, p := range st.Procs() {
		pids[p.Name] = p.PID()
	}
	rdb := redis.NewClient(&redis.Options{Addr: st.Redis.Addr})
	defer rdb.Close()
	cmds0, cmdErr := redisCommands(ctx, rdb)
	cpu0 := proccpu.Take(pids)
	start := time.Now()
	sr, err := st.Client().SetStock(ctx, sku, e2eenv.StockUpdate{Region: o.Region, Quantity: 1000})
	if err != nil {
		return err
	}
	if !sr.Restock {
		return fmt.Errorf("stock update of %s was not a restock: %+v", sku, sr)
	}
	deadline := start.Add(10 * time.Minute)
	want := uint64(o.Users)
	lastReport := time.Now()
	for {
		if res.Produced == 0 {
			if end, err := notifyEnd(kc, o.Region); err == nil && end-kbase >= int64(want) {
				res.Produced = time.Since(start)
				o.Log.Logf("  fan-out: all %d notification requests in Kafka after %s", want, res.Produced.Round(time.Millisecond))
			}
		}
		var at uint64
		_, last, err := edge.State(ctx, o.Region)
		if err == nil {
			at = last.Total() - base.Total()
		}
		if err == nil && at >= want {
			res.Total = time.Since(start)
			res.Delivered = at
			use := proccpu.Between(cpu0, proccpu.Take(pids))
			res.CPU = &use
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d notifications at the edge after %s", at, want, time.Since(start))
		}
		if time.Since(lastReport) > 5*time.Second {
			o.Log.Logf("  %d of %d at the edge after %s", at, want, time.Since(start).Round(time.Millisecond))
			lastReport = time.Now()
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = sub.Unsubscribe()
	select {
	case t := <-first:
		res.FirstDelivery = t.Sub(start)
	default:
	}
	o.Log.Logf("%d notifications acknowledged at the edge %s after the API call (%.0f/s)", res.Delivered, res.Total.Round(time.Millisecond), res.Rate())
	o.Log.Logf("CPU during it: %s", res.CPU)
	if cmdErr == nil {
		// Read after the fact: the benchmark's own polling uses NATS, not
		// Redis, so what changed is the pipeline's.
		if cmds1, err := redisCommands(ctx, rdb); err == nil {
			o.Log.Logf("redis-server per million notifications: %s", commandsPerMillion(cmds0, cmds1, res.Delivered))
		}
	}
	if !o.Verify {
		return nil
	}
	exp := make(map[string]bool, o.Users)
	chans := events.ChannelNames()
	for i := range o.Users {
		exp[events.NotificationID(fmt.Sprintf("b%07d", i), sku, o.Region, sr.Episode, chans[i%len(chans)])] = true
	}
	got, err := edge.Collect(ctx, o.Region, base, func(d *e2eenv.Delivered) bool { return d.SKU == sku })
	if err != nil {
		return err
	}
	c := e2eenv.Tally(fmt.Sprintf("bench-%d", o.Users), exp, got)
	res.Counts = &c
	o.Log.Logf("verified: %s", c)
	if !c.OK() {
		return fmt.Errorf("the big restock was not delivered exactly once: %s", c)
	}
	return nil
}

// latency restocks a sku with a few wishlisters again and again (sold out,
// then back) and measures the API call to the first notification of that
// episode on a live edge subscription.
func latency(ctx context.Context, st *e2eenv.Stack, edge *e2eenv.Edge, o Options, res *Result) error {
	sku := "bench-small"
	c := st.Client()
	var lines []e2eenv.ImportLine
	for i := range o.SmallUsers {
		lines = append(lines, e2eenv.ImportLine{UserID: fmt.Sprintf("s%03d", i), SKU: sku, Region: o.Region, Channels: []string{"app"}})
	}
	if _, err := c.Import(ctx, lines); err != nil {
		return err
	}
	var mu sync.Mutex
	counts := map[int64]int{}
	firsts := map[int64]time.Time{}
	notify := make(chan struct{}, 1)
	sub, err := edge.NC.Subscribe(topicsedge.ChannelFilter(o.Region, events.ChannelApp), func(m *nats.Msg) {
		at := time.Now()
		var n struct {
			SKU     string `json:"sku"`
			Episode int64  `json:"episode"`
		}
		if json.Unmarshal(m.Data, &n) != nil || n.SKU != sku {
			return
		}
		mu.Lock()
		if counts[n.Episode] == 0 {
			firsts[n.Episode] = at
		}
		counts[n.Episode]++
		mu.Unlock()
		select {
		case notify <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return err
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := edge.NC.Flush(); err != nil {
		return err
	}
	wait := func(episode int64, n int) error {
		timeout := time.After(30 * time.Second)
		for {
			mu.Lock()
			got := counts[episode]
			mu.Unlock()
			if got >= n {
				return nil
			}
			select {
			case <-notify:
			case <-timeout:
				return fmt.Errorf("episode %d of %s: %d of %d notifications within 30s", episode, sku, got, n)
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	for i := range o.Restocks {
		if _, err := c.SetStock(ctx, sku, e2eenv.StockUpdate{Region: o.Region, Quantity: 0}); err != nil {
			return err
		}
		start := time.Now()
		sr, err := c.SetStock(ctx, sku, e2eenv.StockUpdate{Region: o.Region, Quantity: 5})
		if err != nil {
			return err
		}
		if !sr.Restock {
			return fmt.Errorf("restock %d of %s: not a restock: %+v", i, sku, sr)
		}
		// All of them, so selling out next does not race this episode.
		if err := wait(sr.Episode, o.SmallUsers); err != nil {
			return err
		}
		mu.Lock()
		res.Latencies = append(res.Latencies, firsts[sr.Episode].Sub(start))
		mu.Unlock()
	}
	sorted := slices.Clone(res.Latencies)
	slices.Sort(sorted)
	res.P50 = percentile(sorted, 0.50)
	res.P99 = percentile(sorted, 0.99)
	res.Max = sorted[len(sorted)-1]
	o.Log.Logf("first delivery over %d restocks: p50 %s, p99 %s, max %s", o.Restocks, res.P50, res.P99, res.Max)
	return nil
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
