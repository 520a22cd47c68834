// Package optoutrace is the scenario behind "an unsubscribed user receives
// nothing after the unsubscribe is acknowledged": a user unsubscribes
// (one-click, through the real wishlist API) in the middle of a large
// fan-out already in Kafka, and the real notifier and gateway run
// in-process against Kafka, Redis, NATS and a webhook receiver. Run
// measures what reached the edge and the provider after the 2xx; the
// callers (a `make test` size and a 100,000-notification e2e size) check
// it against the bound stated in docs/delivery-semantics.md.
package optoutrace

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	gateway "backinstock/services/gateway/app"
	notifier "backinstock/services/notifier/app"
	wishlist "backinstock/services/wishlist/app"
	"backinstock/shared/config"
	"backinstock/shared/edgecheck"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// Options size the scenario. Records notifications go to the app channel
// (edge only: measured by the edge stream's sequence), Emails to the email
// channel (edge → gateway → the webhook receiver: measured at the
// provider); every Every-th record of each is the leaver's.
type Options struct {
	Kafka    kafka.Config
	RedisURL string
	NATSURL  string
	// Region is the scenario's own (its topics, stream and consumers).
	Region          string
	Records, Emails int
	Every           int
	// MaxBatch is the notifier's NOTIFIER_MAX_BATCH; Workers the gateway's.
	MaxBatch, Workers int
	// AppRate and EmailRate are the notifier's RATE_LIMITS per second: they
	// stretch the fan-out so the unsubscribe lands in its middle.
	AppRate, EmailRate int
	Log                *zap.Logger
	Logf               func(format string, args ...any)
}

// Result is what the leaver got.
type Result struct {
	Leaver string
	// Seq is where the edge streams stood right after the 2xx.
	Seq edgecheck.Mark
	// LeaverRecords, LeaverEdge and LateEdge are per channel: the leaver's
	// records, their messages at the edge, and those stored after Seq.
	LeaverRecords, LeaverEdge, LateEdge map[string]int
	// Bound is per channel the most records of the leaver one notifier
	// batch can hold (MaxBatch consecutive records of the one partition).
	Bound map[string]int
	// LateEmailsNotSuppressed counts the leaver's email messages stored
	// after Seq whose receipt is not suppressed (must be 0).
	LateEmailsNotSuppressed int
	// Sent is the leaver's webhooks at the receiver; LateSent those that
	// arrived after the 2xx.
	Sent, LateSent int
	// Others counts other users' notifications that did not arrive (must
	// be 0): at the edge for app, at the receiver for email.
	OthersMissing int
	// Suppressed counts per layer.
	NotifierSuppressed, GatewaySuppressed int
	Elapsed                               time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("leaver records %v, at the edge %v, after the 2xx (seq > %v) %v (bound %v); webhooks %d, after the 2xx %d; suppressed by the notifier %d, by the gateway %d; late edge emails not suppressed %d; others missing %d; %s",
		r.LeaverRecords, r.LeaverEdge, r.Seq, r.LateEdge, r.Bound, r.Sent, r.LateSent, r.NotifierSuppressed, r.GatewaySuppressed, r.LateEmailsNotSuppressed, r.OthersMissing, r.Elapsed.Round(time.Millisecond))
}

// Run runs the scenario once.
func Run(ctx context.Context, o Options) (Result, error) {
	start := time.Now()
	res := Result{Leaver: o.Region + "-leaver", LeaverRecords: map[string]int{}, LeaverEdge: map[string]int{}, LateEdge: map[string]int{}, Bound: map[string]int{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	statusTopic := "optoutrace.receipts." + o.Region
	if err := createTopics(ctx, o, statusTopic); err != nil {
		return res, err
	}
	ns := notifications(o, res.Leaver)
	for _, n := range ns {
		if n.UserID == res.Leaver {
			res.LeaverRecords[n.Channel]++
		}
	}
	for _, ch := range []string{events.ChannelApp, events.ChannelEmail} {
		res.Bound[ch] = (o.MaxBatch + o.Every - 1) / o.Every
	}
	if err := produce(ctx, o.Kafka, ns); err != nil {
		return res, err
	}
	o.Logf("produced %d notifications in %s", len(ns), time.Since(start).Round(time.Millisecond))

	secret, keys, err := secrets()
	if err != nil {
		return res, err
	}
	rcv, err := testenv.StartWebhookReceiver(secret)
	if err != nil {
		return res, err
	}
	defer rcv.Close()
	var stops []func() error
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			_ = stops[i]()
		}
	}()
	wl, stop, err := startWishlist(ctx, o, keys)
	if err != nil {
		return res, err
	}
	stops = append(stops, stop)
	gwReg := prometheus.NewRegistry()
	stop, err = startGateway(ctx, o, statusTopic, rcv.URL, secret, gwReg)
	if err != nil {
		return res, err
	}
	stops = append(stops, stop)

	nc, err := nats.Connect(o.NATSURL)
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	ntReg := prometheus.NewRegistry()
	stop, err = startNotifier(ctx, o, ntReg)
	if err != nil {
		return res, err
	}
	stops = append(stops, stop)

	// The unsubscribe, once a third of the app notifications are at the edge.
	if err := wait(ctx, time.Minute, func() (bool, error) {
		st, err := edgecheck.Read(ctx, js, o.Region)
		return err == nil && st.Msgs >= uint64(o.Records/3), nil
	}); err != nil {
		return res, fmt.Errorf("a third of the fan-out at the edge: %w", err)
	}
	u, err := keys.URL(wl, res.Leaver, unsubscribe.ScopeAll)
	if err != nil {
		return res, err
	}
	resp, err := http.Post(u, "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		return res, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	answered := time.Now()
	if resp.StatusCode != http.StatusOK {
		return res, fmt.Errorf("one-click unsubscribe: %s", resp.Status)
	}
	st, err := edgecheck.Read(ctx, js, o.Region)
	if err != nil {
		return res, err
	}
	res.Seq = st.Last
	o.Logf("unsubscribed %s at edge sequences %v of %d records", res.Leaver, res.Seq, len(ns))

	// Everything consumed and answered.
	if err := waitCommitted(ctx, o); err != nil {
		return res, err
	}
	cons, err := js.Consumer(ctx, topicsedge.StreamName(o.Region, events.ChannelEmail), topicsedge.GatewayConsumer(events.ChannelEmail))
	if err != nil {
		return res, err
	}
	if err := wait(ctx, 5*time.Minute, func() (bool, error) {
		ci, err := cons.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0, nil
	}); err != nil {
		return res, fmt.Errorf("gateway answers every email: %w", err)
	}

	receipts, err := readReceipts(ctx, o.Kafka, statusTopic)
	if err != nil {
		return res, err
	}
	othersApp, err := readEdge(ctx, js, o.Region, &res, receipts)
	if err != nil {
		return res, err
	}
	res.OthersMissing = o.Records - res.LeaverRecords[events.ChannelApp] - othersApp
	for _, n := range ns {
		switch {
		case n.UserID == res.Leaver && n.Channel == events.ChannelEmail:
			if rcv.Delivered(n.NotificationID) > 0 {
				res.Sent++
				if at, _ := rcv.ArrivedAt(n.NotificationID); at.After(answered) {
					res.LateSent++
				}
			}
			if receipts[n.NotificationID] == events.StatusSuppressed {
				res.GatewaySuppressed++
			}
		case n.UserID != res.Leaver && n.Channel == events.ChannelEmail:
			if rcv.Delivered(n.NotificationID) != 1 {
				res.OthersMissing++
			}
		}
	}
	res.NotifierSuppressed = int(counter(ntReg, "backinstock_notifier_suppressed_total"))
	res.Elapsed = time.Since(start)
	return res, nil
}

func notifications(o Options, leaver string) []events.Notification {
	var ns []events.Notification
	for _, c := range []struct {
		channel string
		n       int
	}{{events.ChannelApp, o.Records}, {events.ChannelEmail, o.Emails}} {
		for i := range c.n {
			user := o.Region + "-u" + strconv.Itoa(i)
			if i%o.Every == 0 {
				user = leaver
			}
			sku := "sku-" + strconv.Itoa(i)
			n := events.Notification{
				NotificationID: events.NotificationID(user, sku, o.Region, 1, c.channel),
				RestockEventID: events.RestockEventID(sku, o.Region, 1),
				UserID:         user, SKU: sku, Region: o.Region, Channel: c.channel, Episode: 1,
				Title: "Back in stock", Body: sku + " is back", URL: "https://shop.example/p/" + sku,
				CreatedAt: time.Now().UTC().Truncate(time.Millisecond),
			}
			if c.channel == events.ChannelEmail {
				n.Contact = user + "@example.com"
			}
			ns = append(ns, n)
		}
	}
	return ns
}

func createTopics(ctx context.Context, o Options, statusTopic string) error {
	adm, err := kafka.NewClusterAdmin(o.Kafka)
	if err != nil {
		return err
	}
	defer adm.Close()
	cat, err := catalog.Default()
	if err != nil {
		return err
	}
	// The wishlist API's changelog topic (and the rest of the catalogue).
	if _, err := catalog.Sync(ctx, adm, cat.ForBrokers(3), false); err != nil {
		return fmt.Errorf("apply the catalogue: %w", err)
	}
	// One partition per notify topic: its order is the produce order, so
	// the bound on one batch is a count over consecutive records.
	for _, t := range []string{catalog.Notify(o.Region, events.ChannelApp), catalog.Notify(o.Region, events.ChannelEmail), statusTopic} {
		if err := adm.CreateTopic(t, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create %s: %w", t, err)
		}
	}
	return nil
}

func produce(ctx context.Context, cfg kafka.Config, ns []events.Notification) error {
	p, err := kafka.NewProducer(cfg, kafka.ProducerOptions{Linger: 2 * time.Millisecond}, zap.NewNop())
	if err != nil {
		return err
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, 0, len(ns))
	for _, n := range ns {
		v, err := events.Encode(n)
		if err != nil {
			return err
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: catalog.Notify(n.Region, n.Channel), Key: sarama.StringEncoder(n.UserID), Value: sarama.ByteEncoder(v),
			Headers: kafka.RecordHeaders(events.Headers(events.SchemaNotification, ""))})
	}
	for len(msgs) > 0 {
		k := min(20000, len(msgs))
		if err := p.SendAll(ctx, msgs[:k]); err != nil {
			return fmt.Errorf("produce %d notifications: %w", k, err)
		}
		msgs = msgs[k:]
	}
	return nil
}

func secrets() (string, unsubscribe.Keys, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	keys, err := unsubscribe.ParseKeys("k1:" + base64.RawURLEncoding.EncodeToString(b))
	return "whsec_" + base64.StdEncoding.EncodeToString(b), keys, err
}

// parse fills a config from its Bind defaults and args, as the binary would.
func parse(name string, bind func(*config.Set), args ...string) error {
	s := config.NewSet(name)
	s.FS.SetOutput(io.Discard)
	bind(s)
	return s.Parse(args)
}

// run starts one service's Run and returns its stop, once it listens.
func run(ctx context.Context, name string, runFn func(ctx context.Context, onListen func(string)) error) (addr string, stop func() error, err error) {
	ctx, cancel := context.WithCancel(ctx)
	addrc, done := make(chan string, 1), make(chan error, 1)
	go func() { done <- runFn(ctx, func(a string) { addrc <- a }) }()
	stop = func() error { cancel(); return <-done }
	select {
	case addr = <-addrc:
		return addr, stop, nil
	case err := <-done:
		cancel()
		return "", nil, fmt.Errorf("%s did not start: %w", name, err)
	case <-time.After(60 * time.Second):
		_ = stop()
		return "", nil, fmt.Errorf("%s did not listen within 60s", name)
	}
}

func startWishlist(ctx context.Context, o Options, keys unsubscribe.Keys) (base string, stop func() error, err error) {
	var cfg wishlist.Config
	if err := parse("wishlist", func(s *config.Set) { cfg.Bind(s); cfg.BindServe(s) },
		"--http-addr=127.0.0.1:0", "--api-token=optoutrace-token", "--unsubscribe-keys="+keys[0].ID+":"+string(keys[0].Secret)); err != nil {
		return "", nil, err
	}
	cfg.Kafka, cfg.RedisURL, cfg.RedisCluster = o.Kafka, o.RedisURL, false
	addr, stop, err := run(ctx, "wishlist", func(ctx context.Context, onListen func(string)) error {
		cfg.OnListen = onListen
		return wishlist.RunServe(ctx, cfg, o.Log, prometheus.NewRegistry())
	})
	return "http://" + addr, stop, err
}

func startNotifier(ctx context.Context, o Options, reg *prometheus.Registry) (stop func() error, err error) {
	var cfg notifier.Config
	if err := parse("notifier", cfg.Bind, "--region="+o.Region, "--channels=app,email", "--http-addr=127.0.0.1:0",
		"--stale-drop=false", "--max-batch="+strconv.Itoa(o.MaxBatch),
		fmt.Sprintf("--rate-limits=app=%d,email=%d", o.AppRate, o.EmailRate)); err != nil {
		return nil, err
	}
	cfg.Kafka, cfg.RedisURL, cfg.NATSURL = o.Kafka, o.RedisURL, o.NATSURL
	_, stop, err = run(ctx, "notifier", func(ctx context.Context, onListen func(string)) error {
		cfg.OnListen = onListen
		return notifier.Run(ctx, cfg, o.Log, reg)
	})
	return stop, err
}

func startGateway(ctx context.Context, o Options, statusTopic, url, secret string, reg *prometheus.Registry) (stop func() error, err error) {
	var cfg gateway.Config
	if err := parse("gateway", cfg.Bind, "--region="+o.Region, "--channels=email", "--providers=email=webhook", "--http-addr=127.0.0.1:0",
		"--status-topic="+statusTopic, "--workers="+strconv.Itoa(o.Workers), "--webhook-url="+url, "--webhook-secrets="+secret); err != nil {
		return nil, err
	}
	cfg.Kafka, cfg.RedisURL, cfg.NATSURL = o.Kafka, o.RedisURL, o.NATSURL
	_, stop, err = run(ctx, "gateway", func(ctx context.Context, onListen func(string)) error {
		cfg.OnListen = onListen
		return gateway.Run(ctx, cfg, o.Log, reg)
	})
	return stop, err
}

func wait(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// waitCommitted waits until group notifier.<region> has committed both
// notify topics to their ends.
func waitCommitted(ctx context.Context, o Options) error {
	cl, err := kafka.NewClient(o.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		return err
	}
	topics := []string{catalog.Notify(o.Region, events.ChannelApp), catalog.Notify(o.Region, events.ChannelEmail)}
	return wait(ctx, 5*time.Minute, func() (bool, error) {
		offs, err := adm.ListConsumerGroupOffsets("notifier."+o.Region, map[string][]int32{topics[0]: {0}, topics[1]: {0}})
		if err != nil {
			return false, nil
		}
		for _, t := range topics {
			hwm, err := cl.GetOffset(t, 0, sarama.OffsetNewest)
			if err != nil {
				return false, nil
			}
			b := offs.GetBlock(t, 0)
			if b == nil || b.Offset < hwm {
				return false, nil
			}
		}
		return true, nil
	})
}

// readReceipts returns the last status per notification id.
func readReceipts(ctx context.Context, cfg kafka.Config, topic string) (map[string]string, error) {
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	hwm, err := cl.GetOffset(topic, 0, sarama.OffsetNewest)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	if hwm == 0 {
		return out, nil
	}
	c, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	for {
		select {
		case m := <-pc.Messages():
			d, err := events.DecodeDeliveryStatus(m.Value)
			if err != nil {
				return nil, fmt.Errorf("receipt at offset %d: %w", m.Offset, err)
			}
			out[d.NotificationID] = d.Status
			if m.Offset+1 >= hwm {
				return out, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(30 * time.Second):
			return nil, errors.New("receipts: no record for 30s")
		}
	}
}

// readEdge counts the leaver's messages on the region's edge, and those
// stored after res.Seq, checking each late email's receipt; it returns the
// other users' app messages.
func readEdge(ctx context.Context, js jetstream.JetStream, region string, res *Result, receipts map[string]string) (othersApp int, err error) {
	got, err := edgecheck.Collect(ctx, js, region, nil, nil)
	if err != nil {
		return 0, err
	}
	for _, d := range got {
		_, ch, user, err := topicsedge.ParseSubject(d.Subject)
		if err != nil {
			return 0, err
		}
		if user == res.Leaver {
			res.LeaverEdge[ch]++
			if d.Seq > res.Seq[ch] {
				res.LateEdge[ch]++
				if ch == events.ChannelEmail && receipts[d.MsgID] != events.StatusSuppressed {
					res.LateEmailsNotSuppressed++
				}
			}
		} else if ch == events.ChannelApp {
			othersApp++
		}
	}
	return othersApp, nil
}

func counter(reg *prometheus.Registry, name string) float64 {
	mfs, _ := reg.Gather()
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// Defaults fills the scenario's fixed settings around the sizes: every
// 20th record the leaver's, notifier batches of 500, 8 gateway workers,
// and rate limits that spread each channel over about 3 s, so the
// unsubscribe (at a third of the app notifications) lands with most of
// both still in Kafka.
func (o *Options) Defaults() {
	o.Every, o.MaxBatch, o.Workers = 20, 500, 8
	o.AppRate, o.EmailRate = max(o.Records/3, 1), max(o.Emails/3, 1)
}

// Problems lists every promise r breaks (docs/delivery-semantics.md,
// "Opt-outs honoured late"), none when it keeps them all.
func (r Result) Problems(o Options) []string {
	var out []string
	for ch, n := range r.LateEdge {
		if n > r.Bound[ch] {
			out = append(out, fmt.Sprintf("%d %s messages of the leaver reached the edge after the 2xx; the bound is %d (one batch)", n, ch, r.Bound[ch]))
		}
	}
	if r.LateEmailsNotSuppressed != 0 {
		out = append(out, fmt.Sprintf("%d emails of the leaver stored at the edge after the 2xx were not suppressed by the gateway", r.LateEmailsNotSuppressed))
	}
	if r.LateSent > o.Workers {
		out = append(out, fmt.Sprintf("%d webhooks of the leaver reached the provider after the 2xx; at most %d (the gateway's workers) may be under way", r.LateSent, o.Workers))
	}
	if r.NotifierSuppressed == 0 {
		out = append(out, "the notifier suppressed nothing: the unsubscribe did not land in the middle of the fan-out")
	}
	if r.OthersMissing != 0 {
		out = append(out, fmt.Sprintf("%d notifications of other users missing", r.OthersMissing))
	}
	// Every leaver record is accounted for: at the edge or suppressed before it.
	total := r.LeaverRecords[events.ChannelApp] + r.LeaverRecords[events.ChannelEmail]
	if got := r.LeaverEdge[events.ChannelApp] + r.LeaverEdge[events.ChannelEmail] + r.NotifierSuppressed; got != total {
		out = append(out, fmt.Sprintf("leaver: %d records, %d at the edge or suppressed by the notifier", total, got))
	}
	if r.Sent+r.GatewaySuppressed != r.LeaverEdge[events.ChannelEmail] {
		out = append(out, fmt.Sprintf("leaver: %d emails at the edge, %d sent + %d suppressed by the gateway", r.LeaverEdge[events.ChannelEmail], r.Sent, r.GatewaySuppressed))
	}
	return out
}
