// Command notifier-bench drives the notifier at scale, outside `go test
// -race`, against a kfake cluster, redis-server and an embedded nats-server
// it starts itself (all on 127.0.0.1):
//
//	notifier-bench bench -notifier ./notifier [-n 1000000] [-rate 20000] [-latency-for 10s] [-channels app]
//	    throughput of one notifier (Kafka -> Redis -> JetStream) on a
//	    preloaded topic holding 5% duplicate records (-dup-percent; the
//	    same record value at a later offset, as a replay produces), a
//	    read-back of the edge stream that fails unless it holds every
//	    distinct notification id exactly once, the same throughput for a
//	    bare Kafka -> SET NX -> JetStream loop (on input without
//	    duplicates: it dedupes by record position), their ratio, and
//	    produce-to-edge latency at a fixed rate. The
//	    notifier binary and the bare loop run as child processes, as the
//	    notifier does in production: the servers this process hosts (a
//	    kfake cluster holding millions of records, nats-server) keep their
//	    heap and its collector to themselves.
//	notifier-bench crash -notifier ./notifier [-n 100000]
//	    runs the notifier binary as a child, SIGKILLs it at each step of the
//	    delivery protocol in turn (restarting each time), then checks the
//	    edge holds every notification exactly once.
//	notifier-bench streams [-n 600000] [-workers 16] [-rounds 2] [-conns 1,4]
//	    JetStream alone: the notifier's publisher (over 1, then 4
//	    connections) sends n notifications over the four channels to the
//	    region's edge as one stream per channel and, back to back, as one
//	    stream for the region (the layout before), then re-publishes 5%
//	    and checks every id is held exactly once.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"backinstock/services/notifier/internal/edge"
	"backinstock/services/notifier/internal/notifiertest"
	"backinstock/services/notifier/internal/pipeline"
	"backinstock/shared/edgecheck"
	"backinstock/shared/kafka"
	"backinstock/shared/lifecycle"
	"backinstock/shared/proccpu"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: notifier-bench bench|crash|streams [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "bench":
		err = bench(os.Args[2:], os.Stdout)
	case "crash":
		err = crash(os.Args[2:], os.Stdout)
	case "streams":
		err = streams(os.Args[2:], os.Stdout)
	case "bare":
		err = bareChild(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Println("usage: notifier-bench bench|crash|streams [flags]; see the package comment")
		return
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "notifier-bench:", err)
		os.Exit(1)
	}
}

// servers are the three backends, started in this process.
type servers struct {
	dir   string
	kafka *testenv.Kafka
	redis *testenv.Redis
	nats  *testenv.NATS
	nc    *nats.Conn
	js    jetstream.JetStream
}

func startServers() (*servers, error) {
	dir, err := os.MkdirTemp("", "notifier-bench-")
	if err != nil {
		return nil, err
	}
	s := &servers{dir: dir}
	if s.kafka, err = testenv.StartKafka(3); err != nil {
		return s, err
	}
	if s.redis, err = testenv.StartRedis(testenv.RedisOptions{Dir: filepath.Join(dir, "redis")}); err != nil {
		return s, err
	}
	if s.nats, err = testenv.StartNATS(testenv.NATSOptions{StoreDir: filepath.Join(dir, "nats")}); err != nil {
		return s, err
	}
	if s.nc, err = nats.Connect(s.nats.URL()); err != nil {
		return s, err
	}
	s.js, err = jetstream.New(s.nc)
	return s, err
}

func (s *servers) close() {
	if s.nc != nil {
		s.nc.Close()
	}
	if s.nats != nil {
		s.nats.Close()
	}
	if s.redis != nil {
		s.redis.Close()
	}
	if s.kafka != nil {
		s.kafka.Close()
	}
	_ = os.RemoveAll(s.dir)
}

func (s *servers) kcfg() kafka.Config { return kafka.Config{Brokers: s.kafka.Brokers} }

// preloaded is what preload produced.
type preloaded struct {
	took time.Duration
	// ids are the n distinct notification ids.
	ids map[string]bool
	// dups are the records produced a second time.
	dups int
}

// preload creates region's topics and produces n notifications, and again
// dupPercent% of them (the same record value at a later offset of the same
// partition, as a producer's retry or a replay of the fan-out writes it).
func (s *servers) preload(ctx context.Context, region string, channels []string, n, dupPercent int) (preloaded, error) {
	res := preloaded{ids: make(map[string]bool, n)}
	if err := notifiertest.CreateTopics(s.kcfg(), region, channels, 12); err != nil {
		return res, err
	}
	p, err := notifiertest.NewProducer(s.kcfg())
	if err != nil {
		return res, err
	}
	defer p.Close()
	start := time.Now()
	const chunk = 100000
	for i := 0; i < n; i += chunk {
		ns := notifiertest.Many(region, channels, min(chunk, n-i), "sku-"+strconv.Itoa(i), time.Now())
		for j, nt := range ns {
			res.ids[nt.NotificationID] = true
			if (i+j)%100 < dupPercent {
				ns = append(ns, nt)
				res.dups++
			}
		}
		if err := notifiertest.Produce(ctx, p, ns); err != nil {
			return res, err
		}
	}
	res.took = time.Since(start)
	return res, nil
}

// verifyEdge waits until group has committed all of region's notify topics
// (so a duplicate the notifier let through would be on the stream by then),
// reads the region's edge stream back and requires every id of want exactly
// once: no duplicate, none missing, none unexpected, Nats-Msg-Id and subject
// matching the payload.
func (s *servers) verifyEdge(ctx context.Context, region string, channels []string, group string, want map[string]bool, out io.Writer) error {
	cl, adm, topics, err := s.notifyAdmin(region, channels)
	if err != nil {
		return err
	}
	defer cl.Close()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		c, h, err := notifiertest.Committed(cl, adm, group, topics)
		if err == nil && h > 0 && c == h {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("edge read-back: %s committed %d of %d records after 5m", group, c, h)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	got, err := edgecheck.Collect(cctx, s.js, region, nil, nil)
	if err != nil {
		return fmt.Errorf("edge read-back: %w", err)
	}
	c := edgecheck.Tally("edge read-back", want, got)
	fmt.Fprintln(out, c)
	if !c.OK() {
		return fmt.Errorf("NOT exactly once at the edge of %s: %s", region, c)
	}
	fmt.Fprintln(out, "exactly once: PASS")
	return nil
}

// waitStream waits until the region's streams hold want messages and
// returns when the first and the last arrived (polled every 10 ms).
func (s *servers) waitStream(ctx context.Context, region string, want uint64, timeout time.Duration) (first, last time.Time, err error) {
	deadline := time.Now().Add(timeout)
	for {
		n, err := notifiertest.StreamMsgs(ctx, s.js, region)
		if err == nil && n > 0 && first.IsZero() {
			first = time.Now()
		}
		if err == nil && n >= want {
			return first, time.Now(), nil
		}
		if time.Now().After(deadline) {
			return first, time.Time{}, fmt.Errorf("edge %s holds %d of %d after %s", region, n, want, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func bench(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	bin := fs.String("notifier", "", "path to the notifier binary (required)")
	n := fs.Int("n", 1000000, "notifications preloaded for the throughput runs")
	rate := fs.Int("rate", 20000, "produce rate of the latency run (per second)")
	latFor := fs.Duration("latency-for", 10*time.Second, "length of the latency run")
	dupPercent := fs.Int("dup-percent", 5, "percent of the notifier's input records produced twice (0-100)")
	skipBare := fs.Bool("skip-bare", false, "skip the bare loop")
	chanList := fs.String("channels", "app", "channels the notifications are spread over, comma-separated (the latency run uses app)")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this process (kfake, nats-server, the load) during the notifier runs to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("-notifier is required")
	}
	if *dupPercent < 0 || *dupPercent > 100 {
		return fmt.Errorf("-dup-percent %d: want 0 to 100", *dupPercent)
	}
	// This process hosts the kfake cluster (every record on the heap) and
	// nats-server, which stand in for servers of their own. Collecting a heap
	// of a gigabyte takes a few hundred milliseconds of marking that slows
	// both, which would show up as the notifier's tail latency; collect
	// rarely instead, as separate servers would not share it.
	lifecycle.TuneGC(1000, 8<<30)
	ctx := context.Background()
	s, err := startServers()
	defer s.close()
	if err != nil {
		return err
	}
	channels := strings.Split(*chanList, ",")
	for _, ch := range channels {
		if !events.ValidChannel(ch) {
			return fmt.Errorf("-channels: %q is not one of %s", ch, strings.Join(events.ChannelNames(), ", "))
		}
	}
	if !slices.Contains(channels, events.ChannelApp) {
		return errors.New("-channels must include app: the latency run publishes app notifications")
	}
	fmt.Fprintf(out, "preloading %d notifications (+%d%% duplicate records) for the notifier and %d for the bare loop...\n", *n, *dupPercent, *n)
	pre, err := s.preload(ctx, "bench", channels, *n, *dupPercent)
	if err != nil {
		return err
	}
	recs := *n + pre.dups
	fmt.Fprintf(out, "  produced %d records (%d distinct, %d duplicates) in %s (%.0f/s)\n", recs, *n, pre.dups, pre.took.Round(time.Millisecond), float64(recs)/pre.took.Seconds())
	if !*skipBare {
		if _, err := s.preload(ctx, "bare", channels, *n, 0); err != nil {
			return err
		}
	}

	// 1. The notifier on the preloaded topic.
	notifier, err := s.child(*bin, []string{"run"}, "REGION=bench", "NOTIFIER_CHANNELS="+strings.Join(channels, ","), "NOTIFIER_STALE_DROP=true")
	if err != nil {
		return err
	}
	defer notifier.kill()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	pids := map[string]int{"notifier": notifier.cmd.Process.Pid, "redis-server": s.redis.PID(), "bench (kfake, nats-server)": os.Getpid()}
	cpu0 := proccpu.Take(pids)
	first, last, err := s.waitStream(ctx, "bench", uint64(*n), 10*time.Minute)
	if err != nil {
		return err
	}
	cpu := proccpu.Between(cpu0, proccpu.Take(pids))
	notifierRate := float64(*n-1) / last.Sub(first).Seconds()
	fmt.Fprintf(out, "notifier: %d notifications Kafka -> Redis -> JetStream in %s: %.0f/s (%d records read, %d duplicates among them)\n", *n, last.Sub(first).Round(time.Millisecond), notifierRate, recs, pre.dups)
	perM := 1e6 / float64(*n)
	fmt.Fprintf(out, "  CPU until the edge held them all: %s\n", cpu)
	fmt.Fprintf(out, "  CPU-s per million notifications: notifier %.2f, redis-server %.2f, bench (kfake, nats-server) %.2f\n",
		cpu.Procs["notifier"]*perM, cpu.Procs["redis-server"]*perM, cpu.Procs["bench (kfake, nats-server)"]*perM)
	// The read-back runs between the measured phases, not inside them.
	if err := s.verifyEdge(ctx, "bench", channels, "notifier.bench", pre.ids, out); err != nil {
		return err
	}

	// 2. Latency at a fixed rate, same notifier still running.
	// As testing.B does before each benchmark: collect now, so that this
	// process's collector does not run inside the measured window.
	runtime.GC()
	lat, err := s.latency(ctx, "bench", *rate, *latFor)
	if err != nil {
		return err
	}
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	r := func(d time.Duration) time.Duration { return d.Round(10 * time.Microsecond) }
	fmt.Fprintf(out, "latency produce -> edge at %d/s for %s (%d notifications): p50 %s, p99 %s\n", *rate, *latFor, lat.count, r(lat.edge.p50), r(lat.edge.p99))
	fmt.Fprintf(out, "  of which produce -> Kafka ack (before the notifier sees it): p50 %s, p99 %s\n", r(lat.produced.p50), r(lat.produced.p99))
	if err := notifier.stop(); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}

	// 3. The bare loop.
	if !*skipBare {
		bare, err := s.child(os.Args[0], []string{"bare", "-region", "bare"})
		if err != nil {
			return err
		}
		defer bare.kill()
		first, last, err := s.waitStream(ctx, "bare", uint64(*n), 10*time.Minute)
		if err != nil {
			return err
		}
		if err := bare.stop(); err != nil {
			return fmt.Errorf("bare loop: %w", err)
		}
		bareRate := float64(*n-1) / last.Sub(first).Seconds()
		fmt.Fprintf(out, "bare loop: %d Kafka -> SET NX -> JetStream (Msg-Id) in the same bench run: %.0f/s\n", *n, bareRate)
		fmt.Fprintf(out, "ratio notifier / bare loop: %.2f\n", notifierRate/bareRate)
	}
	return nil
}

// latencies are the latency run's figures.
type latencies struct {
	count          int
	edge, produced quantiles
}

type quantiles struct{ p50, p99 time.Duration }

func quantilesOf(d []time.Duration) quantiles {
	slices.Sort(d)
	return quantiles{p50: d[len(d)/2], p99: d[len(d)*99/100]}
}

// latency produces at rate for dur and measures, per notification, from
// created_at to its Kafka acknowledgement (the part no notifier can change)
// and to its receipt at a core NATS subscriber on the edge subjects.
func (s *servers) latency(ctx context.Context, region string, rate int, dur time.Duration) (latencies, error) {
	// The subscriber only notes the arrival; decoding waits for the end so
	// that it cannot delay the arrivals it measures.
	type arrival struct {
		at  time.Time
		msg *nats.Msg
	}
	var mu sync.Mutex
	var arrivals []arrival
	var prodLats []time.Duration
	sub, err := s.nc.Subscribe(topicsedge.RegionFilter(region), func(m *nats.Msg) {
		now := time.Now()
		mu.Lock()
		arrivals = append(arrivals, arrival{now, m})
		mu.Unlock()
	})
	if err != nil {
		return latencies{}, err
	}
	defer sub.Unsubscribe()
	_ = s.nc.Flush()
	p, err := notifiertest.NewProducer(s.kcfg())
	if err != nil {
		return latencies{}, err
	}
	defer p.Close()
	const tick = 10 * time.Millisecond
	per := rate / int(time.Second/tick)
	t := time.NewTicker(tick)
	defer t.Stop()
	total := 0
	// The first second warms up (the producer's first metadata and producer
	// id, connections, the notifier back from idle) and is not counted.
	const warmUp = time.Second
	start := time.Now().Add(warmUp)
	for i := 0; time.Since(start) < dur; i++ {
		<-t.C
		now := time.Now()
		acked := func(*sarama.ProducerMessage, error) {
			if now.Before(start) {
				return
			}
			d := time.Since(now)
			mu.Lock()
			prodLats = append(prodLats, d)
			mu.Unlock()
		}
		for j := range per {
			nt := notifiertest.Notification(region, "app", "l"+strconv.Itoa(i)+"x"+strconv.Itoa(j), "lat", 1, now)
			m, err := notifiertest.Record(nt)
			if err != nil {
				return latencies{}, err
			}
			if err := p.Send(ctx, m, acked); err != nil {
				return latencies{}, err
			}
		}
		total += per
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := len(arrivals)
		mu.Unlock()
		if got >= total {
			break
		}
		if time.Now().After(deadline) {
			return latencies{}, fmt.Errorf("latency run: %d of %d arrived", got, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	edgeLats := make([]time.Duration, 0, len(arrivals))
	for _, a := range arrivals {
		created, err := notifiertest.CreatedAt(a.msg)
		if err != nil {
			return latencies{}, fmt.Errorf("latency run: edge message: %w", err)
		}
		if !created.Before(start) {
			edgeLats = append(edgeLats, a.at.Sub(created))
		}
	}
	return latencies{count: len(edgeLats), edge: quantilesOf(edgeLats), produced: quantilesOf(prodLats)}, nil
}

// bareChild is the reference loop, run as a child of bench with the
// notifier binary's GC settings: the shared group runner, a pipelined SET NX
// per record, JetStream publishes with Msg-Id through the notifier's edge
// publisher (so the ratio prices the protocol, not the client), wait for
// the acks. It runs until SIGTERM.
func bareChild(args []string) error {
	fs := flag.NewFlagSet("bare", flag.ContinueOnError)
	region := fs.String("region", "bare", "region whose app topic to consume")
	if err := fs.Parse(args); err != nil {
		return err
	}
	lifecycle.TuneGC(400, 1<<30)
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	kcfg := kafka.Config{Brokers: strings.Split(os.Getenv("KAFKA_BROKERS"), ",")}
	ropts, err := redis.ParseURL(os.Getenv("REDIS_URL"))
	if err != nil {
		return err
	}
	rdb := redis.NewClient(ropts)
	defer rdb.Close()
	nc, err := nats.Connect(os.Getenv("NATS_URL"))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	pub, err := edge.NewPublisher(nc, 16384, 5*time.Second)
	if err != nil {
		return err
	}
	if err := edge.EnsureStreams(ctx, js, *region, edge.StreamOptions{Duplicates: 6 * time.Hour, MaxAge: 24 * time.Hour}); err != nil {
		return err
	}
	return runBare(ctx, kcfg, rdb, pub, *region, "bare."+*region, true)
}

// runBare runs the bare loop as consumer group group. dedupe false is the
// test-only broken loop (no SET NX, no Nats-Msg-Id): the test proving that
// the edge read-back catches duplicates runs it.
func runBare(ctx context.Context, kcfg kafka.Config, rdb *redis.Client, pub *edge.Publisher, region, group string, dedupe bool) error {
	topics := []string{catalog.Notify(region, "app")}
	h := kafka.HandlerFunc(func(ctx context.Context, b *kafka.Batch) error {
		if !dedupe {
			items := make([]edge.Item, len(b.Records))
			for i, r := range b.Records {
				items[i] = edge.Item{Subject: topicsedge.Subject(region, "app", string(r.Key)), Data: r.Value}
			}
			_, err := pub.Publish(items).Wait(ctx)
			return err
		}
		cmds := make([]*redis.BoolCmd, len(b.Records))
		if _, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, r := range b.Records {
				cmds[i] = p.SetNX(ctx, "bare:"+string(r.Key)+":"+strconv.FormatInt(r.Offset, 10)+":"+strconv.Itoa(int(r.Partition)), "1", time.Hour)
			}
			return nil
		}); err != nil {
			return err
		}
		items := make([]edge.Item, 0, len(b.Records))
		for i, r := range b.Records {
			if cmds[i].Val() {
				items = append(items, edge.Item{Subject: topicsedge.Subject(region, "app", string(r.Key)), MsgID: string(r.Key) + "-" + strconv.Itoa(int(r.Partition)) + "-" + strconv.FormatInt(r.Offset, 10), Data: r.Value})
			}
		}
		_, err := pub.Publish(items).Wait(ctx)
		return err
	})
	g, err := kafka.NewGroup(kcfg, kafka.GroupOptions{Group: group, Topics: topics, MaxBatch: 4000, Linger: 2 * time.Millisecond}, h, zap.NewNop())
	if err != nil {
		return err
	}
	return g.Run(ctx)
}

// proc is a child process of the bench.
type proc struct{ cmd *exec.Cmd }

// child starts bin with args and the servers' addresses in its environment.
func (s *servers) child(bin string, args []string, env ...string) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+s.kafka.BrokerList(), "REDIS_URL="+s.redis.URL(), "NATS_URL="+s.nats.URL(),
		"HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	return &proc{cmd: cmd}, nil
}

// stop ends the child gracefully and reports how it exited.
func (p *proc) stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	return p.cmd.Wait()
}

// kill ends the child if an error left it running.
func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func crash(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("crash", flag.ContinueOnError)
	bin := fs.String("notifier", "", "path to the notifier binary (required)")
	n := fs.Int("n", 100000, "notifications")
	after := fs.Int("after", 10, "crash the N-th time each step is reached")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return errors.New("-notifier is required")
	}
	ctx := context.Background()
	s, err := startServers()
	defer s.close()
	if err != nil {
		return err
	}
	const region = "crash"
	channels := events.ChannelNames()
	if _, err := s.preload(ctx, region, channels, *n, 0); err != nil {
		return err
	}
	cl, adm, topics, err := s.notifyAdmin(region, channels)
	if err != nil {
		return err
	}
	defer cl.Close()
	progress := func() (int64, int64) {
		c, h, _ := notifiertest.Committed(cl, adm, "notifier."+region, topics)
		return c, h
	}
	// Three edge connections: the kills land while batches are spread over
	// several, and a batch replayed after a kill may go out on another
	// connection than the first time; the stream's window must still
	// absorb it.
	env := []string{"REGION=" + region, "NOTIFIER_PUBLISH_TIMEOUT=3s", "NOTIFIER_EDGE_CONNECTIONS=3"}
	for _, point := range pipeline.CrashPoints {
		start := time.Now()
		p, err := s.child(*bin, []string{"run"}, append(slices.Clone(env), "NOTIFIER_CRASH_AT="+point, "NOTIFIER_CRASH_AFTER_N="+strconv.Itoa(*after))...)
		if err != nil {
			return err
		}
		err = p.cmd.Wait()
		ws, _ := p.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			return fmt.Errorf("crash at %s: notifier ended with %v, not SIGKILL", point, err)
		}
		c, h := progress()
		edgeN, _ := notifiertest.StreamMsgs(ctx, s.js, region)
		fmt.Fprintf(out, "killed at %-13s after %s: committed %d of %d, edge holds %d\n", point, time.Since(start).Round(time.Millisecond), c, h, edgeN)
	}
	final, err := s.child(*bin, []string{"run"}, env...)
	if err != nil {
		return err
	}
	defer final.kill()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		c, h := progress()
		if h > 0 && c == h {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("final run: committed %d of %d after 5m", c, h)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := final.stop(); err != nil {
		return fmt.Errorf("final run exit: %w", err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	counts, err := notifiertest.EdgeCounts(cctx, s.js, region)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "edge: %d messages, %d distinct, %d expected\n", counts.Total, counts.Distinct, *n)
	if counts.Total != *n || counts.Distinct != *n {
		return fmt.Errorf("NOT exactly once: total %d distinct %d want %d (duplicates %d)", counts.Total, counts.Distinct, *n, len(counts.Dups()))
	}
	fmt.Fprintln(out, "exactly once: PASS")
	return nil
}

// notifyAdmin is a client and an admin on it, for reading the committed
// progress of the region's notify topics on channels (also returned); the
// caller closes the client.
func (s *servers) notifyAdmin(region string, channels []string) (sarama.Client, sarama.ClusterAdmin, []string, error) {
	cl, err := kafka.NewClient(s.kcfg())
	if err != nil {
		return nil, nil, nil, err
	}
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		cl.Close()
		return nil, nil, nil, err
	}
	topics := make([]string, len(channels))
	for i, ch := range channels {
		topics[i] = catalog.Notify(region, ch)
	}
	return cl, adm, topics, nil
}
