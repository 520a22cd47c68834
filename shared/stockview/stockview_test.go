package stockview_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/shared/kafka"
	"backinstock/shared/stockview"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

const region = "us-east-1"

// fixture is one test's stock topic, a producer to it and a running view.
type fixture struct {
	t     *testing.T
	cfg   kafka.Config
	topic string
	prod  *kafka.Producer
	view  *stockview.View
	stop  func() error
}

func newFixture(t *testing.T, partitions int32) *fixture {
	t.Helper()
	f := &fixture{t: t, cfg: kafka.Config{Brokers: env.Kafka(t).Brokers}, topic: testenv.Unique(t, "stock")}
	adm, err := kafka.NewClusterAdmin(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := adm.CreateTopic(f.topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", f.topic, err)
	}
	f.prod, err = kafka.NewProducer(f.cfg, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.prod.Close() })
	return f
}

// start runs a view of the topic; it stops when the test ends.
func (f *fixture) start(timeout time.Duration) *stockview.View {
	f.t.Helper()
	cl, err := kafka.NewClient(f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	v, err := stockview.New(cl, stockview.Config{Region: region, Topic: f.topic, CatchUpTimeout: timeout}, zaptest.NewLogger(f.t))
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	var stopped bool
	var runErr error
	f.stop = func() error {
		if !stopped {
			cancel()
			runErr, stopped = <-done, true
		}
		return runErr
	}
	f.t.Cleanup(func() {
		if err := f.stop(); err != nil {
			f.t.Errorf("Run: %v", err)
		}
		_ = cl.Close()
	})
	f.view = v
	return v
}

func (f *fixture) level(sku, reg string, qty, episode int64) {
	f.t.Helper()
	data, err := events.Encode(events.StockLevel{SKU: sku, Region: reg, Quantity: qty, Episode: episode, At: time.Now()})
	if err != nil {
		f.t.Fatal(err)
	}
	f.send(sku, reg, data)
}

func (f *fixture) tombstone(sku, reg string) {
	f.t.Helper()
	f.send(sku, reg, nil)
}

func (f *fixture) send(sku, reg string, value []byte) {
	f.t.Helper()
	msg := &sarama.ProducerMessage{Topic: f.topic, Key: sarama.StringEncoder(events.StockKey(sku, reg))}
	if value != nil {
		msg.Value = sarama.ByteEncoder(value)
	}
	if err := f.prod.SendAll(context.Background(), []*sarama.ProducerMessage{msg}); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) catchUp() {
	f.t.Helper()
	if err := f.view.CatchUp(context.Background()); err != nil {
		f.t.Fatalf("CatchUp: %v", err)
	}
}

func (f *fixture) want(sku string, want stockview.Level, known bool) {
	f.t.Helper()
	got, ok := f.view.Get(sku)
	if got != want || ok != known {
		f.t.Fatalf("Get(%s) = %+v, %v; want %+v, %v", sku, got, ok, want, known)
	}
}

// TestCatchUpReadsWhatWasWrittenBefore: the view started after the levels
// were written knows them all once CatchUp returns, and CatchUp right after a
// later write sees it, with no wait in between.
func TestCatchUpReadsWhatWasWrittenBefore(t *testing.T) {
	f := newFixture(t, 4)
	for i := range int64(40) {
		f.level("sku-"+string(rune('a'+i%20)), region, i, i)
	}
	v := f.start(10 * time.Second)
	f.catchUp()
	if v.Len() != 20 {
		t.Fatalf("Len = %d, want 20", v.Len())
	}
	f.want("sku-a", stockview.Level{Quantity: 20, Episode: 20}, true)
	f.level("sku-a", region, 0, 20) // sold out a moment ago
	f.catchUp()
	f.want("sku-a", stockview.Level{Quantity: 0, Episode: 20}, true)
}

// TestCatchUpOfEmptyTopic returns at once: there is nothing to wait for.
func TestCatchUpOfEmptyTopic(t *testing.T) {
	f := newFixture(t, 3)
	v := f.start(10 * time.Second)
	f.catchUp()
	if v.Len() != 0 {
		t.Fatalf("Len = %d, want 0", v.Len())
	}
}

// TestCompactionSemantics: the view keeps what compaction would keep of its
// region: the newest level per sku, never an older episode, and nothing of a
// sku whose tombstone came last.
func TestCompactionSemantics(t *testing.T) {
	f := newFixture(t, 2)
	f.start(10 * time.Second)
	f.level("kept", region, 3, 1)
	f.level("updated", region, 3, 1)
	f.level("updated", region, 1, 1)
	f.level("late", region, 0, 2)
	f.level("late", region, 5, 1) // an older episode arrives late
	f.level("gone", region, 4, 1)
	f.tombstone("gone", region)
	f.level("back", region, 4, 1)
	f.tombstone("back", region)
	f.level("back", region, 2, 2)
	f.level("elsewhere", "eu-west-1", 0, 1)
	f.level("kept", "eu-west-1", 0, 9) // the same sku in another region
	f.tombstone("kept", "eu-west-1")
	f.send("junk", region, []byte(`{"sku":"junk"}`)) // undecodable: skipped
	f.catchUp()
	f.want("kept", stockview.Level{Quantity: 3, Episode: 1}, true)
	f.want("updated", stockview.Level{Quantity: 1, Episode: 1}, true)
	f.want("late", stockview.Level{Quantity: 0, Episode: 2}, true)
	f.want("gone", stockview.Level{}, false)
	f.want("back", stockview.Level{Quantity: 2, Episode: 2}, true)
	f.want("elsewhere", stockview.Level{}, false)
	f.want("junk", stockview.Level{}, false)
	if n := f.view.Len(); n != 4 {
		t.Fatalf("Len = %d, want 4", n)
	}
}

// TestCatchUpBehindIsAClearError: a view that does not read (here Run never
// started) reports ErrBehind after the timeout instead of waiting forever.
func TestCatchUpBehindIsAClearError(t *testing.T) {
	cl, err := kafka.NewClient(kafka.Config{Brokers: env.Kafka(t).Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	v, err := stockview.New(cl, stockview.Config{Region: region, Topic: testenv.Unique(t, "stock"), CatchUpTimeout: 200 * time.Millisecond}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = v.CatchUp(context.Background())
	if !errors.Is(err, stockview.ErrBehind) {
		t.Fatalf("CatchUp = %v, want ErrBehind", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("CatchUp took %s, want about the 200ms timeout", took)
	}
	// The caller's own end is not mistaken for the view falling behind.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := v.CatchUp(ctx); !errors.Is(err, context.Canceled) || errors.Is(err, stockview.ErrBehind) {
		t.Fatalf("CatchUp(canceled) = %v, want context.Canceled", err)
	}
}

// TestCatchUpAfterRunStopped fails at once: the view will not move again.
func TestCatchUpAfterRunStopped(t *testing.T) {
	f := newFixture(t, 1)
	f.level("a", region, 1, 1)
	f.start(10 * time.Second)
	f.catchUp()
	if err := f.stop(); err != nil {
		t.Fatalf("Run = %v, want nil after its context ended", err)
	}
	f.level("a", region, 0, 1)
	if err := f.view.CatchUp(context.Background()); !errors.Is(err, stockview.ErrStopped) {
		t.Fatalf("CatchUp = %v, want ErrStopped", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  stockview.Config
		ok   bool
	}{
		{"defaults", stockview.Config{Region: region}, true},
		{"no region", stockview.Config{}, false},
		{"bad region", stockview.Config{Region: "US_EAST"}, false},
		{"negative timeout", stockview.Config{Region: region, CatchUpTimeout: -time.Second}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := stockview.New(nil, tt.cfg, zap.NewNop())
			if (err == nil) != tt.ok {
				t.Fatalf("New = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
