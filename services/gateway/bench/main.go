// Command gateway-bench measures one gateway process, outside `go test
// -race`, against servers it starts itself on 127.0.0.1: a kfake cluster
// for the receipts, an embedded nats-server (JetStream file store) for the
// edge, redis-server, Mailpit as the SMTP server and a Standard Webhooks
// receiver (testenv.WebhookReceiver, which verifies every signature):
//
//	gateway-bench -gateway bin/gateway [-emails 20000] [-webhooks 50000] [-workers 16,64]
//
// For each provider and worker count it preloads the region's edge stream
// with the notifications, starts the gateway binary as a child process (as
// in production: this process's servers keep their heap and collector to
// themselves) and times from the first delivery to the consumer having
// nothing pending or unacknowledged. Then it checks exactly once at the
// far end (every notification id once in Mailpit or at the receiver,
// nothing else) and one sent receipt each, and says where the time went:
// CPU seconds per process, and the gateway's own mean provider call time.
// With -inprocess the gateway runs in this process instead, under a CPU
// profile (-cpuprofile), to see its hot functions.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/gateway/app"
	"backinstock/services/gateway/internal/email"
	"backinstock/services/gateway/internal/webhook"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "gateway-bench:", err)
		os.Exit(1)
	}
}

type options struct {
	gateway          string
	emails, webhooks int
	workers          []int
	inProcess        bool
	cpuProfile       string
}

func run(args []string) error {
	fs := flag.NewFlagSet("gateway-bench", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.gateway, "gateway", "bin/gateway", "the gateway binary")
	fs.IntVar(&o.emails, "emails", 20000, "emails per run (0: none)")
	fs.IntVar(&o.webhooks, "webhooks", 50000, "webhooks per run (0: none)")
	workers := fs.String("workers", "16,64", "GATEWAY_WORKERS of each run, comma-separated")
	fs.BoolVar(&o.inProcess, "inprocess", false, "run the gateway in this process (for -cpuprofile)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "with -inprocess: write a CPU profile of the runs here")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, w := range strings.Split(*workers, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(w))
		if err != nil || n < 1 {
			return fmt.Errorf("-workers: %q is not a positive number", w)
		}
		o.workers = append(o.workers, n)
	}
	if !o.inProcess {
		if _, err := os.Stat(o.gateway); err != nil {
			return fmt.Errorf("-gateway: %w (make bench-gateway builds it)", err)
		}
	}

	dir, err := os.MkdirTemp("", "gateway-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b, err := startServers(dir)
	if err != nil {
		return err
	}
	defer b.close()
	fmt.Printf("gateway-bench: %d emails, %d webhooks per run, workers %v; servers: kafka %s, nats %s, redis %s\n",
		o.emails, o.webhooks, o.workers, b.kafka.BrokerList(), b.nats.URL(), b.redis.URL())

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var results []result
	for _, w := range o.workers {
		if o.emails > 0 {
			r, err := b.runEmail(o, w)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
		if o.webhooks > 0 {
			r, err := b.runWebhook(o, w)
			if err != nil {
				return err
			}
			results = append(results, r)
		}
	}
	fmt.Println()
	fmt.Println("| provider | workers | notifications | time | per second | exactly once | mean provider call | CPU seconds |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		fmt.Println(r.row())
	}
	return nil
}

// bench is the servers every run shares.
type bench struct {
	dir   string
	kafka *testenv.Kafka
	nats  *testenv.NATS
	redis *testenv.Redis
	nc    *nats.Conn
	js    jetstream.JetStream
	runs  int
}

func startServers(dir string) (*bench, error) {
	b := &bench{dir: dir}
	var err error
	if b.kafka, err = testenv.StartKafka(1); err != nil {
		return nil, err
	}
	if b.nats, err = testenv.StartNATS(testenv.NATSOptions{StoreDir: filepath.Join(dir, "nats")}); err != nil {
		b.close()
		return nil, err
	}
	if b.redis, err = testenv.StartRedis(testenv.RedisOptions{Dir: filepath.Join(dir, "redis")}); err != nil {
		b.close()
		return nil, err
	}
	if b.nc, err = nats.Connect(b.nats.URL()); err != nil {
		b.close()
		return nil, err
	}
	if b.js, err = jetstream.New(b.nc); err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

func (b *bench) close() {
	if b.nc != nil {
		b.nc.Close()
	}
	if b.redis != nil {
		b.redis.Close()
	}
	if b.nats != nil {
		b.nats.Close()
	}
	if b.kafka != nil {
		b.kafka.Close()
	}
}

// result is one run.
type result struct {
	provider           string
	workers, n         int
	elapsed            time.Duration
	distinct, dups     int
	sentReceipts       int
	meanSend           time.Duration
	cpu                []string
	extraExactlyOnceOK bool
}

func (r result) ok() bool {
	return r.distinct == r.n && r.dups == 0 && r.sentReceipts == r.n && r.extraExactlyOnceOK
}

func (r result) row() string {
	once := fmt.Sprintf("yes (%d distinct, 0 duplicates, %d sent receipts)", r.distinct, r.sentReceipts)
	if !r.ok() {
		once = fmt.Sprintf("NO: %d distinct, %d duplicates, %d sent receipts of %d", r.distinct, r.dups, r.sentReceipts, r.n)
	}
	return fmt.Sprintf("| %s | %d | %d | %.2f s | %.0f/s | %s | %.2f ms | %s |", r.provider, r.workers, r.n,
		r.elapsed.Seconds(), float64(r.n)/r.elapsed.Seconds(), once, float64(r.meanSend.Microseconds())/1000, strings.Join(r.cpu, ", "))
}

// region is a fresh region per run: its own stream and consumers.
func (b *bench) region() string {
	b.runs++
	return fmt.Sprintf("bench-%d", b.runs)
}

func (b *bench) runEmail(o options, workers int) (result, error) {
	region := b.region()
	mp, err := testenv.StartMailpit(testenv.MailpitOptions{Dir: filepath.Join(b.dir, region+"-mailpit")})
	if err != nil {
		return result{}, err
	}
	defer mp.Close()
	host, port, _ := net.SplitHostPort(mp.SMTPAddr)
	env := []string{
		"GATEWAY_CHANNELS=email", "GATEWAY_PROVIDERS=email=smtp", "EMAIL_FROM=Shop <shop@shop.example>",
		"SMTP_HOST=" + host, "SMTP_PORT=" + port, "SMTP_TLS=none",
	}
	r := result{provider: email.ProviderName, workers: workers, n: o.emails}
	ids, err := b.preload(region, events.ChannelEmail, o.emails)
	if err != nil {
		return r, err
	}
	mpCPU := procCPU(mp.PID())
	if err := b.runGateway(o, region, events.ChannelEmail, workers, env, &r); err != nil {
		return r, err
	}
	r.cpu = append(r.cpu, fmt.Sprintf("mailpit %.1f", procCPU(mp.PID())-mpCPU))
	msgs, err := mp.Messages(context.Background())
	if err != nil {
		return r, err
	}
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.MessageID]++
	}
	r.extraExactlyOnceOK = len(msgs) == o.emails
	for _, id := range ids {
		switch c := seen[email.MessageID(id, "shop.example")]; {
		case c >= 1:
			r.distinct++
			r.dups += c - 1
		}
	}
	return r, nil
}

func (b *bench) runWebhook(o options, workers int) (result, error) {
	region := b.region()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	rcv, err := testenv.StartWebhookReceiver(secret)
	if err != nil {
		return result{}, err
	}
	defer rcv.Close()
	env := []string{"GATEWAY_CHANNELS=app", "GATEWAY_PROVIDERS=app=" + webhook.ProviderName, "WEBHOOK_URL=" + rcv.URL, "WEBHOOK_SECRETS=" + secret}
	r := result{provider: webhook.ProviderName, workers: workers, n: o.webhooks}
	ids, err := b.preload(region, events.ChannelApp, o.webhooks)
	if err != nil {
		return r, err
	}
	if err := b.runGateway(o, region, events.ChannelApp, workers, env, &r); err != nil {
		return r, err
	}
	distinct, dups, _ := rcv.Counts()
	rejected := rcv.Rejected()
	r.extraExactlyOnceOK = distinct == len(ids) && len(rejected) == 0
	if len(rejected) > 0 {
		fmt.Printf("  receiver refused %d requests, e.g. %s\n", len(rejected), rejected[0])
	}
	for _, id := range ids {
		if c := rcv.Delivered(id); c >= 1 {
			r.distinct++
		}
	}
	r.dups = dups
	return r, nil
}

// preload creates region's edge streams and publishes n notifications of
// channel to it as the notifier does (Nats-Msg-Id = notification id).
func (b *bench) preload(region, channel string, n int) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testenv.CreateEdgeStreams(ctx, b.js, region); err != nil {
		return nil, err
	}
	ids := make([]string, 0, n)
	now := time.Now().UTC().Truncate(time.Millisecond)
	for i := range n {
		user := fmt.Sprintf("u%07d", i)
		sku := "SKU-" + strconv.Itoa(i%100)
		nt := events.Notification{
			NotificationID: events.NotificationID(user, sku, region, 1, channel), RestockEventID: events.RestockEventID(sku, region, 1),
			UserID: user, SKU: sku, Region: region, Channel: channel, Episode: 1,
			Title: "Kettle " + sku, Body: "Kettle " + sku + " is back in stock at 19.99.", URL: "https://shop.example/p/" + sku,
			CreatedAt: now, Locale: "en-US",
		}
		if channel == events.ChannelEmail {
			nt.Contact = user + "@example.com"
		}
		data, err := events.Encode(nt)
		if err != nil {
			return nil, err
		}
		m := nats.NewMsg(topicsedge.Subject(region, channel, user))
		m.Data = data
		m.Header.Set(jetstream.MsgIDHeader, nt.NotificationID)
		if _, err := b.js.PublishMsgAsync(m); err != nil {
			return nil, err
		}
		ids = append(ids, nt.NotificationID)
		if i%4000 == 3999 {
			select {
			case <-b.js.PublishAsyncComplete():
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	select {
	case <-b.js.PublishAsyncComplete():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return ids, nil
}

// runGateway runs one gateway for region over the preloaded stream until
// the consumer is drained, filling r's timing, CPU and receipts.
func (b *bench) runGateway(o options, region, channel string, workers int, env []string, r *result) error {
	topic := "delivery.status." + region + ".v1"
	adm, err := kafka.NewClusterAdmin(kafka.Config{Brokers: b.kafka.Brokers})
	if err != nil {
		return err
	}
	err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 12, ReplicationFactor: 1}, false)
	adm.Close()
	if err != nil {
		return err
	}
	port, err := testenv.FreePort()
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	env = append(env, "REGION="+region, "KAFKA_BROKERS="+b.kafka.BrokerList(), "REDIS_URL="+b.redis.URL(), "NATS_URL="+b.nats.URL(),
		"HTTP_ADDR="+addr, "DELIVERY_STATUS_TOPIC="+topic, "GATEWAY_WORKERS="+strconv.Itoa(workers),
		"GATEWAY_MAX_ACK_PENDING="+strconv.Itoa(max(1024, 4*workers)), "LOG_LEVEL=warn")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cons := make(chan jetstream.Consumer, 1)
	start := make(chan time.Time, 1)
	go func() { // the first delivery starts the clock
		for ctx.Err() == nil {
			c, err := b.js.Consumer(ctx, topicsedge.StreamName(region, channel), topicsedge.GatewayConsumer(channel))
			if err == nil {
				if info, err := c.Info(ctx); err == nil && info.Delivered.Consumer > 0 {
					start <- time.Now()
					cons <- c
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	redisCPU, selfCPU := procCPU(b.redis.PID()), procCPU(os.Getpid())
	var stop func() error
	var pid int
	if o.inProcess {
		stop, err = b.inProcess(env)
	} else {
		stop, pid, err = childGateway(o.gateway, env, filepath.Join(b.dir, region+"-gateway.log"))
	}
	if err != nil {
		return err
	}
	defer func() { _ = stop() }()
	var t0 time.Time
	var c jetstream.Consumer
	select {
	case t0 = <-start:
		c = <-cons
	case <-time.After(2 * time.Minute):
		return errors.New("the gateway delivered nothing within 2 minutes")
	}
	for {
		info, err := c.Info(ctx)
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		if time.Since(t0) > 10*time.Minute {
			return errors.New("not drained within 10 minutes")
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.elapsed = time.Since(t0)
	sum, count := scrapeSend("http://" + addr + "/metrics")
	if count > 0 {
		r.meanSend = time.Duration(sum / count * float64(time.Second))
	}
	gwCPU := procCPU(pid)
	if err := stop(); err != nil {
		return fmt.Errorf("gateway stop: %w", err)
	}
	if pid != 0 {
		r.cpu = append(r.cpu, fmt.Sprintf("gateway %.1f", gwCPU))
	}
	r.cpu = append(r.cpu, fmt.Sprintf("redis-server %.1f", procCPU(b.redis.PID())-redisCPU),
		fmt.Sprintf("bench process (nats-server, kfake, receiver) %.1f", procCPU(os.Getpid())-selfCPU))
	r.sentReceipts, err = countSent(b.kafka, topic)
	fmt.Printf("%s, %d workers: %d in %s\n", r.provider, workers, r.n, r.elapsed.Round(time.Millisecond))
	return err
}

// childGateway starts `gateway run` with env and returns what stops it
// (SIGTERM, waiting) and its pid.
func childGateway(bin string, env []string, logPath string) (func() error, int, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, 0, err
	}
	cmd := exec.Command(bin, "run")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, 0, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); f.Close() }()
	stopped := false
	var werr error
	return func() error {
		if stopped {
			return werr
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case werr = <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			werr = errors.Join(errors.New("did not stop within 60s"), <-done)
		}
		if werr != nil {
			log, _ := os.ReadFile(logPath)
			werr = fmt.Errorf("%w\n%s", werr, tail(string(log), 20))
		}
		return werr
	}, cmd.Process.Pid, nil
}

// inProcess runs app.Run in this process with the same settings.
func (b *bench) inProcess(env []string) (func() error, error) {
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return nil, err
		}
	}
	var cfg app.Config
	s := config.NewSet("gateway run")
	cfg.Bind(s)
	if err := s.Parse(nil); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, zap.NewNop(), prometheus.NewRegistry()) }()
	stopped := false
	var err error
	return func() error {
		if !stopped {
			stopped = true
			cancel()
			err = <-done
		}
		return err
	}, nil
}

// procCPU is the user+system CPU seconds of process pid so far (0 when
// unknown).
func procCPU(pid int) float64 {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 12th and 13th.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// scrapeSend reads the gateway's send_seconds histogram sum and count.
func scrapeSend(url string) (sum, count float64) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		v, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		switch {
		case strings.HasPrefix(line, "backinstock_gateway_send_seconds_sum{"):
			sum += v
		case strings.HasPrefix(line, "backinstock_gateway_send_seconds_count{"):
			count += v
		}
	}
	return sum, count
}

// countSent counts the distinct notifications with a sent receipt on topic.
func countSent(k *testenv.Kafka, topic string) (int, error) {
	cl, err := kafka.NewClient(kafka.Config{Brokers: k.Brokers})
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	consumer, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return 0, err
	}
	defer consumer.Close()
	parts, err := cl.Partitions(topic)
	if err != nil {
		return 0, err
	}
	sent := map[string]bool{}
	for _, p := range parts {
		hwm, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		if hwm == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		for m := range pc.Messages() {
			d, err := events.DecodeDeliveryStatus(m.Value)
			if err != nil {
				pc.Close()
				return 0, err
			}
			if d.Status == events.StatusSent {
				sent[d.NotificationID] = true
			}
			if m.Offset >= hwm-1 {
				break
			}
		}
		pc.Close()
	}
	return len(sent), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
