package edge_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"backinstock/services/gateway/internal/edge"
	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/services/gateway/internal/retry"
	"backinstock/shared/testenv"
	topicsedge "backinstock/topics/edge"
)

var env *testenv.Env

// TestMain also fails the package if a test leaves a goroutine behind once
// the servers are stopped: a consumer, worker or keep-alive that outlived
// its stop. go-metrics' meter arbiter is sarama's process-wide singleton.
func TestMain(m *testing.M) {
	code := testenv.Main(m, &env)
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick")); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left behind:", err)
			code = 1
		}
	}
	os.Exit(code)
}

func connect(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(env.NATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// handlerFunc is the test's side of the consumer: what a handler decides.
type handlerFunc func(ctx context.Context, d edge.Delivery) edge.Outcome

func (f handlerFunc) Handle(ctx context.Context, d edge.Delivery) edge.Outcome { return f(ctx, d) }

// seen records the deliveries a handler got.
type seen struct {
	mu sync.Mutex
	by map[string][]edge.Delivery // subject -> deliveries
	at map[string][]time.Time
}

func newSeen() *seen { return &seen{by: map[string][]edge.Delivery{}, at: map[string][]time.Time{}} }

func (s *seen) add(d edge.Delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.by[d.Subject] = append(s.by[d.Subject], d)
	s.at[d.Subject] = append(s.at[d.Subject], time.Now())
}

func (s *seen) count() (subjects, deliveries int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ds := range s.by {
		deliveries += len(ds)
	}
	return len(s.by), deliveries
}

func policy(ackWait time.Duration) retry.Policy {
	return retry.Policy{AckWait: ackWait, MaxAttempts: 5, MaxBackoff: 8 * ackWait, FirstRetry: 100 * time.Millisecond}
}

// run starts a consumer until the test ends (or stop is called) and
// returns the function that stops it and waits for Run.
func run(t *testing.T, js jetstream.JetStream, h edge.Handler, o edge.Options) (stop func() error) {
	t.Helper()
	o.Log = zaptest.NewLogger(t)
	o.StatsInterval = 100 * time.Millisecond
	c := edge.NewConsumer(js, h, o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	testenv.Eventually(t, 10*time.Second, func() bool { return c.Ready() == nil }, "consumer not created")
	return stop
}

func publish(t *testing.T, js jetstream.JetStream, region string, users ...string) {
	t.Helper()
	for _, u := range users {
		gatewaytest.Publish(t, js, gatewaytest.Notification(region, u, "SKU-1", 1), "")
	}
}

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "u" + strconv.Itoa(i)
	}
	return out
}

func TestConsumerConfigFollowsTheContract(t *testing.T) {
	js := connect(t)
	region := gatewaytest.Region()
	gatewaytest.CreateStreams(t, js, region)
	p := policy(time.Second)
	run(t, js, handlerFunc(func(context.Context, edge.Delivery) edge.Outcome { return edge.Outcome{} }),
		edge.Options{Region: region, Channel: "email", Policy: p, MaxAckPending: 64, Workers: 4})
	cons, err := js.Consumer(context.Background(), topicsedge.StreamName(region, "email"), topicsedge.GatewayConsumer("email"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := cons.CachedInfo().Config
	if cfg.FilterSubject != topicsedge.ChannelFilter(region, "email") || cfg.AckPolicy != jetstream.AckExplicitPolicy ||
		cfg.MaxDeliver != 5 || cfg.MaxAckPending != 64 || cfg.AckWait != time.Second || len(cfg.BackOff) != 4 || cfg.BackOff[3] != 8*time.Second {
		t.Errorf("consumer config %+v", cfg)
	}
}

// TestReplicasShareTheConsumer: two consumers on the same durable (two
// gateway replicas) handle every message once between them.
func TestReplicasShareTheConsumer(t *testing.T) {
	js := connect(t)
	region := gatewaytest.Region()
	gatewaytest.CreateStreams(t, js, region)
	s := newSeen()
	var perReplica [2]int
	var mu sync.Mutex
	for i := range 2 {
		run(t, js, handlerFunc(func(_ context.Context, d edge.Delivery) edge.Outcome {
			s.add(d)
			mu.Lock()
			perReplica[i]++
			mu.Unlock()
			time.Sleep(time.Millisecond) // let the other replica pull too
			return edge.Outcome{Action: edge.Ack}
		}), edge.Options{Region: region, Channel: "email", Policy: policy(5 * time.Second), MaxAckPending: 100, Workers: 4})
	}
	publish(t, js, region, users(200)...)
	testenv.Eventually(t, 30*time.Second, func() bool { n, _ := s.count(); return n == 200 }, "not every message handled")
	time.Sleep(200 * time.Millisecond)
	if subjects, deliveries := s.count(); subjects != 200 || deliveries != 200 {
		t.Errorf("%d subjects in %d deliveries, want 200 in 200", subjects, deliveries)
	}
	mu.Lock()
	defer mu.Unlock()
	if perReplica[0] == 0 || perReplica[1] == 0 {
		t.Errorf("one replica did all the work: %v", perReplica)
	}
}

// TestRetryComesBackAfterItsDelay: a NAK with delay returns the message
// after the delay on the first delivery, and after the delay plus the
// back-off's growth on later ones (retry.Policy.Wait).
func TestRetryComesBackAfterItsDelay(t *testing.T) {
	js := connect(t)
	region := gatewaytest.Region()
	gatewaytest.CreateStreams(t, js, region)
	p := policy(time.Second)
	const delay = 300 * time.Millisecond
	s := newSeen()
	run(t, js, handlerFunc(func(_ context.Context, d edge.Delivery) edge.Outcome {
		s.add(d)
		if d.Attempt < 3 {
			return edge.Outcome{Action: edge.Retry, Delay: delay}
		}
		return edge.Outcome{Action: edge.Ack}
	}), edge.Options{Region: region, Channel: "email", Policy: p, Workers: 2})
	publish(t, js, region, "u1")
	testenv.Eventually(t, 20*time.Second, func() bool { _, n := s.count(); return n == 3 }, "not delivered three times")
	s.mu.Lock()
	defer s.mu.Unlock()
	subject := topicsedge.Subject(region, "email", "u1")
	at, ds := s.at[subject], s.by[subject]
	for i, d := range ds {
		if d.Attempt != i+1 {
			t.Errorf("delivery %d says attempt %d", i+1, d.Attempt)
		}
	}
	for attempt := 1; attempt <= 2; attempt++ {
		got, want := at[attempt].Sub(at[attempt-1]), p.Wait(attempt, delay)
		if got < want-50*time.Millisecond || got > want+2*time.Second {
			t.Errorf("after attempt %d the message came back in %s, want about %s", attempt, got, want)
		}
	}
}

// TestSlowSendIsKeptAlive: a handler that takes three ack waits is not
// handed the message a second time: in-progress acks (every third of the
// ack wait) keep it.
func TestSlowSendIsKeptAlive(t *testing.T) {
	js := connect(t)
	region := gatewaytest.Region()
	gatewaytest.CreateStreams(t, js, region)
	s := newSeen()
	run(t, js, handlerFunc(func(_ context.Context, d edge.Delivery) edge.Outcome {
		s.add(d)
		time.Sleep(3 * time.Second)
		return edge.Outcome{Action: edge.Ack}
	}), edge.Options{Region: region, Channel: "email", Policy: policy(time.Second), Workers: 2})
	publish(t, js, region, "u1")
	testenv.Eventually(t, 10*time.Second, func() bool { _, n := s.count(); return n >= 1 }, "never delivered")
	time.Sleep(4 * time.Second)
	if _, n := s.count(); n != 1 {
		t.Errorf("delivered %d times, want once", n)
	}
}

// TestStopFinishesInFlightSends: stopping waits for the handler that is
// running and acknowledges its message; the next consumer does not get it
// again.
func TestStopFinishesInFlightSends(t *testing.T) {
	js := connect(t)
	region := gatewaytest.Region()
	gatewaytest.CreateStreams(t, js, region)
	started := make(chan struct{})
	var once sync.Once
	var finished sync.WaitGroup
	finished.Add(1)
	o := edge.Options{Region: region, Channel: "email", Policy: policy(5 * time.Second), Workers: 1}
	stop := run(t, js, handlerFunc(func(ctx context.Context, d edge.Delivery) edge.Outcome {
		once.Do(func() { close(started) })
		time.Sleep(700 * time.Millisecond)
		if ctx.Err() != nil {
			t.Error("the handler's context ended at the stop")
		}
		finished.Done()
		return edge.Outcome{Action: edge.Ack}
	}), o)
	publish(t, js, region, "u1")
	<-started
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	finished.Wait() // Run returned: the handler had finished

	s := newSeen()
	run(t, js, handlerFunc(func(_ context.Context, d edge.Delivery) edge.Outcome { s.add(d); return edge.Outcome{Action: edge.Ack} }), o)
	publish(t, js, region, "u2")
	testenv.Eventually(t, 10*time.Second, func() bool { _, n := s.count(); return n >= 1 }, "the second consumer got nothing")
	time.Sleep(300 * time.Millisecond)
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.by) != 1 || s.by[topicsedge.Subject(region, "email", "u2")] == nil {
		t.Errorf("after the stop the next consumer got %v, want u2 only", s.by)
	}
}

// TestTermIsNotRedelivered and TestBackpressure: a term drops the message;
// with every send failing, no more than MaxAckPending messages are out and
// the rest wait in the stream.
func TestTermIsNotRedelivered(t *testing.T) {
	js := connect(t)
	region := gatewaytest.Region()
	gatewaytest.CreateStreams(t, js, region)
	s := newSeen()
	run(t, js, handlerFunc(func(_ context.Context, d edge.Delivery) edge.Outcome {
		s.add(d)
		return edge.Outcome{Action: edge.Term, Reason: "test"}
	}), edge.Options{Region: region, Channel: "email", Policy: policy(300 * time.Millisecond), Workers: 1})
	publish(t, js, region, "u1")
	testenv.Eventually(t, 10*time.Second, func() bool { _, n := s.count(); return n >= 1 }, "never delivered")
	time.Sleep(time.Second)
	if _, n := s.count(); n != 1 {
		t.Errorf("delivered %d times after a term", n)
	}
}

func TestBackpressure(t *testing.T) {
	js := connect(t)
	region := gatewaytest.Region()
	gatewaytest.CreateStreams(t, js, region)
	s := newSeen()
	run(t, js, handlerFunc(func(_ context.Context, d edge.Delivery) edge.Outcome {
		s.add(d)
		return edge.Outcome{Action: edge.Retry, Delay: time.Minute} // the provider is down
	}), edge.Options{Region: region, Channel: "email", Policy: policy(5 * time.Second), MaxAckPending: 8, Workers: 2})
	publish(t, js, region, users(50)...)
	testenv.Eventually(t, 10*time.Second, func() bool { n, _ := s.count(); return n == 8 }, "the first 8 not handled")
	time.Sleep(500 * time.Millisecond)
	if n, _ := s.count(); n != 8 {
		t.Errorf("%d messages taken with MaxAckPending 8", n)
	}
	cons, err := js.Consumer(context.Background(), topicsedge.StreamName(region, "email"), topicsedge.GatewayConsumer("email"))
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(context.Background())
	if err != nil || info.NumAckPending != 8 || info.NumPending != 42 {
		t.Errorf("consumer: ack pending %d, pending %d (%v); want 8 and 42", info.NumAckPending, info.NumPending, err)
	}
}

// TestWaitsForTheStream: a gateway started before the notifier created the
// stream waits for it.
func TestWaitsForTheStream(t *testing.T) {
	js := connect(t)
	region := gatewaytest.Region()
	s := newSeen()
	c := edge.NewConsumer(js, handlerFunc(func(_ context.Context, d edge.Delivery) edge.Outcome { s.add(d); return edge.Outcome{Action: edge.Ack} }),
		edge.Options{Region: region, Channel: "email", Policy: policy(5 * time.Second), Log: zaptest.NewLogger(t)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	time.Sleep(300 * time.Millisecond)
	if c.Ready() == nil {
		t.Fatal("ready without a stream")
	}
	gatewaytest.CreateStreams(t, js, region)
	publish(t, js, region, "u1")
	testenv.Eventually(t, 15*time.Second, func() bool { _, n := s.count(); return n == 1 }, "nothing handled once the stream exists")
}
