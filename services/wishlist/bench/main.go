// Command wishlist-bench measures one restock's fan-out to N wishlisters in
// one region: it starts a 3-broker kfake cluster (in this process) and a
// redis-server, loads the wishlisters straight into Redis with pipelines,
// runs the real `wishlist fanout` as a child process, produces one restock
// and reports the records produced per second, the wall time and the
// worker's peak RSS (VmHWM).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

type options struct {
	wishlisters int
	channels    int
	pageSize    int
	inFlight    int
	parallelism int
	bin         string
	region      string
	devices     bool
}

func main() {
	var o options
	fs := flag.NewFlagSet("wishlist-bench", flag.ContinueOnError)
	fs.IntVar(&o.wishlisters, "wishlisters", 1_000_000, "wishlisters of the restocked sku")
	fs.IntVar(&o.channels, "channels", 1, "channels per wishlister (1-4): records = wishlisters × channels")
	fs.IntVar(&o.pageSize, "page-size", 5000, "FANOUT_PAGE_SIZE of the worker")
	fs.IntVar(&o.inFlight, "in-flight-pages", 3, "FANOUT_IN_FLIGHT_PAGES of the worker")
	fs.IntVar(&o.parallelism, "parallelism", 1, "FANOUT_PARALLELISM of the worker: segments of the restock paged at once")
	fs.StringVar(&o.bin, "wishlist-bin", "", "the wishlist binary (default: go build ./cmd/wishlist into a temporary directory)")
	fs.StringVar(&o.region, "region", "us-east-1", "region of the restock")
	fs.BoolVar(&o.devices, "devices", false, "give every wishlister preferences with an fcm device and a webpush subscription (copied onto its app and web notifications)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "wishlist-bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.channels < 1 || o.channels > 4 {
		return errors.New("--channels must be 1 to 4")
	}
	dir, err := os.MkdirTemp("", "wishlist-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if o.bin == "" {
		o.bin = filepath.Join(dir, "wishlist")
		build := exec.Command("go", "build", "-o", o.bin, "./cmd/wishlist")
		build.Stderr = os.Stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/wishlist (run from services/wishlist): %w", err)
		}
	}
	k, err := testenv.StartKafka(3)
	if err != nil {
		return err
	}
	defer k.Close()
	kcfg := kafka.Config{Brokers: k.Brokers}
	if err := applyCatalog(ctx, kcfg); err != nil {
		return err
	}
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: filepath.Join(dir, "redis")})
	if err != nil {
		return err
	}
	defer r.Close()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()

	sku := "bench-sku"
	t0 := time.Now()
	if err := load(ctx, store.New(rdb), sku, o); err != nil {
		return err
	}
	fmt.Fprintf(out, "loaded %d wishlisters into Redis in %s\n", o.wishlisters, time.Since(t0).Round(time.Millisecond))

	cmd := exec.Command(o.bin, "fanout", "--region", o.region, "--page-size", strconv.Itoa(o.pageSize),
		"--in-flight-pages", strconv.Itoa(o.inFlight), "--parallelism", strconv.Itoa(o.parallelism), "--metrics-addr", "")
	cmd.Env = append(os.Environ(), "KAFKA_BROKERS="+k.BrokerList(), "REDIS_URL="+r.URL(), "LOG_LEVEL=info")
	logs, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Kill() }()
	joined, finished := make(chan struct{}), make(chan time.Duration, 1)
	go watch(logs, joined, finished)
	select {
	case <-joined:
	case <-time.After(60 * time.Second):
		return errors.New("the worker's group did not get its partitions within 60s")
	}

	ev := events.RestockEvent{EventID: events.RestockEventID(sku, o.region, 1), SKU: sku, Region: o.region, Quantity: 1000, Episode: 1,
		OccurredAt: time.Now().UTC(), Product: &events.Product{Title: "Benchmark kettle", URL: "https://shop.example.com/p/bench-sku", Price: "19.99"}}
	data, err := events.Encode(ev)
	if err != nil {
		return err
	}
	redisCPU0 := redisCPUSeconds(ctx, rdb)
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	driverCPU0 := tv(ru0.Utime) + tv(ru0.Stime)
	prod, err := kafka.NewProducer(kcfg, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		return err
	}
	start := time.Now()
	err = prod.SendAll(ctx, []*sarama.ProducerMessage{{Topic: catalog.Restock, Key: sarama.StringEncoder(sku), Value: sarama.ByteEncoder(data)}})
	_ = prod.Close()
	if err != nil {
		return err
	}
	var took time.Duration
	select {
	case took = <-finished:
	case <-time.After(10 * time.Minute):
		return errors.New("the fan-out did not finish within 10 minutes")
	}
	wall := time.Since(start)
	hwm, err := vmHWM(cmd.Process.Pid)
	if err != nil {
		return err
	}
	workerCPU, err := processCPU(cmd.Process.Pid)
	if err != nil {
		return err
	}
	redisCPU := redisCPUSeconds(ctx, rdb) - redisCPU0
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	driverCPU := tv(ru.Utime) + tv(ru.Stime) - driverCPU0
	load, _ := os.ReadFile("/proc/loadavg")
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		return err
	}
	defer cl.Close()
	var records int64
	for _, c := range events.ChannelNames()[:o.channels] {
		topic := catalog.Notify(o.region, c)
		parts, err := cl.Partitions(topic)
		if err != nil {
			return err
		}
		for _, p := range parts {
			n, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				return err
			}
			records += n
		}
	}
	// A clean stop lets the worker commit and leave the group.
	_ = cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		fmt.Fprintln(os.Stderr, "wishlist-bench: the worker did not stop within 30s of SIGTERM")
	}
	fmt.Fprintf(out, "wishlisters            %d (parallelism %d)\n", o.wishlisters, o.parallelism)
	fmt.Fprintf(out, "records produced       %d (acknowledged, in the notify topics)\n", records)
	fmt.Fprintf(out, "fan-out time           %s (worker's own measure, first page to done marker)\n", took.Round(time.Millisecond))
	fmt.Fprintf(out, "wall time              %s (restock produced -> fan-out done)\n", wall.Round(time.Millisecond))
	fmt.Fprintf(out, "records/s (fan-out)    %.0f\n", float64(records)/took.Seconds())
	fmt.Fprintf(out, "records/s (wall)       %.0f\n", float64(records)/wall.Seconds())
	fmt.Fprintf(out, "worker peak RSS        %.1f MB (VmHWM)\n", float64(hwm)/1024)
	fmt.Fprintf(out, "CPU seconds            worker %.2f (whole life), redis-server %.2f, kfake+driver %.2f (during the fan-out)\n", workerCPU, redisCPU, driverCPU)
	fmt.Fprintf(out, "load average           %s", load)
	return nil
}

func applyCatalog(ctx context.Context, kcfg kafka.Config) error {
	cat, err := catalog.Default()
	if err != nil {
		return err
	}
	adm, err := kafka.NewClusterAdmin(kcfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	_, err = catalog.Sync(ctx, adm, cat.ForBrokers(3), false)
	return err
}

// load writes the wishlisters straight into Redis with the store's own
// pipelined writes (no changelog: this is set-up, not what is measured).
func load(ctx context.Context, st *store.Store, sku string, o options) error {
	chans := events.ChannelNames()[:o.channels]
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const batch = 10_000
	puts := make([]wishes.Entry, 0, batch)
	old := make([]*wishes.Entry, batch)
	for i := range o.wishlisters {
		puts = append(puts, wishes.Entry{UserID: fmt.Sprintf("user-%07d", i), SKU: sku, Region: o.region, Channels: chans,
			Since: base.Add(time.Duration(i/10) * time.Millisecond)}) // ten per millisecond: ties ordered by id
		if len(puts) == batch || i == o.wishlisters-1 {
			if o.devices {
				if err := withDevices(ctx, st, puts); err != nil {
					return err
				}
			}
			if err := st.Write(ctx, puts, nil, old[:len(puts)]); err != nil {
				return err
			}
			puts = puts[:0]
		}
	}
	return nil
}

// withDevices stores preferences with two push devices for each entry's
// user (before the entries, so Write copies them to the fan-out's records):
// every user's are distinct, as real tokens are.
func withDevices(ctx context.Context, st *store.Store, puts []wishes.Entry) error {
	pipe := st.Client().Pipeline()
	for _, e := range puts {
		p := wishes.Preferences{Devices: []events.Device{
			{ID: "phone", Kind: events.DeviceFCM, Token: "fcm-" + e.UserID + ":APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"},
			{ID: "laptop", Kind: events.DeviceWebPush, Endpoint: "https://fcm.googleapis.com/fcm/send/" + e.UserID,
				P256dh: "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", Auth: "tBHItJI5svbpez7KI4CCXg"},
		}}
		data, err := json.Marshal(p)
		if err != nil {
			return err
		}
		pipe.HSet(ctx, store.UserKey(e.UserID), store.PrefsField, data)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// watch reads the worker's JSON log lines: it reports when the group has
// its partitions and how long the fan-out took by its own account.
func watch(r io.Reader, joined chan<- struct{}, finished chan<- time.Duration) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 1<<20)
	var once bool
	for sc.Scan() {
		line := sc.Bytes()
		var rec struct {
			Msg  string  `json:"msg"`
			Took float64 `json:"took"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch {
		case rec.Msg == "partitions assigned" && !once:
			once = true
			close(joined)
		case rec.Msg == "fan-out finished":
			finished <- time.Duration(rec.Took * float64(time.Second))
		case strings.Contains(rec.Msg, "failed"):
			fmt.Fprintf(os.Stderr, "worker: %s\n", line)
		}
	}
}

// processCPU is the user+system CPU time pid has used, in seconds.
func processCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	// utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
	ut, err1 := strconv.ParseFloat(fields[11], 64)
	st, err2 := strconv.ParseFloat(fields[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return (ut + st) / 100, nil // USER_HZ is 100 on Linux
}

// redisCPUSeconds is redis-server's used CPU (user+sys) from INFO cpu.
func redisCPUSeconds(ctx context.Context, rdb *redis.Client) float64 {
	info, err := rdb.Info(ctx, "cpu").Result()
	if err != nil {
		return 0
	}
	var total float64
	for _, l := range strings.Split(info, "\r\n") {
		for _, k := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(l, k); ok {
				f, _ := strconv.ParseFloat(v, 64)
				total += f
			}
		}
	}
	return total
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// vmHWM is the peak resident set size of pid in KiB.
func vmHWM(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("VmHWM not found")
}
