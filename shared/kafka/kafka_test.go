package kafka_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	if os.Getenv("KAFKA_TEST_CHILD") == "crash" {
		os.Exit(crashChild())
	}
	os.Exit(testenv.Main(m, &env))
}

func cfg(t testing.TB) kafka.Config {
	return kafka.Config{Brokers: env.Kafka(t).Brokers}
}

func createTopic(t testing.TB, c kafka.Config, name string, partitions int32) {
	t.Helper()
	adm, err := kafka.NewClusterAdmin(c)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := adm.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
}

func produce(t testing.TB, c kafka.Config, topic string, values ...string) {
	t.Helper()
	p, err := kafka.NewProducer(c, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(values))
	for i, v := range values {
		msgs[i] = &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(v), Value: sarama.StringEncoder(v)}
	}
	if err := p.SendAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// recorder is a handler that remembers every value it processed.
type recorder struct {
	mu   sync.Mutex
	seen []string
	fail func(b *kafka.Batch) error
}

func (r *recorder) Handle(ctx context.Context, b *kafka.Batch) error {
	if r.fail != nil {
		if err := r.fail(b); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range b.Records {
		r.seen = append(r.seen, string(m.Value))
	}
	return nil
}

func (r *recorder) values() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.seen...)
}

func runGroup(t testing.TB, c kafka.Config, o kafka.GroupOptions, h kafka.Handler) (stop func()) {
	t.Helper()
	g, err := kafka.NewGroup(c, o, h, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("group run: %v", err)
		}
	}
}

func committed(t testing.TB, c kafka.Config, group, topic string, partitions int32) map[int32]int64 {
	t.Helper()
	adm, err := kafka.NewClusterAdmin(c)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	parts := make([]int32, partitions)
	for i := range parts {
		parts[i] = int32(i)
	}
	resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for p, b := range resp.Blocks[topic] {
		out[p] = b.Offset
	}
	return out
}

func TestProducerAndGroupRoundTrip(t *testing.T) {
	c := cfg(t)
	topic := testenv.Unique(t, "rt")
	createTopic(t, c, topic, 4)
	var want []string
	for i := range 1000 {
		want = append(want, fmt.Sprintf("v%04d", i))
	}
	produce(t, c, topic, want...)

	rec := &recorder{}
	stop := runGroup(t, c, kafka.GroupOptions{Group: testenv.Unique(t, "g"), Topics: []string{topic}}, rec)
	testenv.Eventually(t, 30*time.Second, func() bool { return len(rec.values()) >= len(want) }, "all records consumed")
	stop()
	got := map[string]int{}
	for _, v := range rec.values() {
		got[v]++
	}
	for _, v := range want {
		if got[v] != 1 {
			t.Fatalf("record %s seen %d times", v, got[v])
		}
	}
}

// TestOffsetsCommitWhileRunning: commits happen off the partitions' path,
// but promptly, not only when the partitions are released.
func TestOffsetsCommitWhileRunning(t *testing.T) {
	c := cfg(t)
	topic := testenv.Unique(t, "live")
	group := testenv.Unique(t, "g")
	createTopic(t, c, topic, 2)
	rec := &recorder{}
	stop := runGroup(t, c, kafka.GroupOptions{Group: group, Topics: []string{topic}, MaxBatch: 7}, rec)
	defer stop()
	for round := 1; round <= 3; round++ {
		var vs []string
		for i := range 50 {
			vs = append(vs, fmt.Sprintf("r%d-%02d", round, i))
		}
		produce(t, c, topic, vs...)
		want := int64(50 * round)
		testenv.Eventually(t, 20*time.Second, func() bool {
			var sum int64
			for _, off := range committed(t, c, group, topic, 2) {
				sum += max(off, 0)
			}
			return sum == want
		}, fmt.Sprintf("round %d committed while the group runs", round))
		if n := len(rec.values()); n != int(want) {
			t.Fatalf("round %d: handled %d records, want %d", round, n, want)
		}
	}
}

func TestFailedBatchIsRetriedAndNotCommitted(t *testing.T) {
	c := cfg(t)
	topic := testenv.Unique(t, "retry")
	group := testenv.Unique(t, "g")
	createTopic(t, c, topic, 1)
	produce(t, c, topic, "a", "b", "c")

	var mu sync.Mutex
	failing := true
	attempts := 0
	rec := &recorder{fail: func(b *kafka.Batch) error {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		if failing {
			return errors.New("edge not acknowledging")
		}
		return nil
	}}
	metrics := kafka.NewMetrics(prometheus.NewRegistry())
	stop := runGroup(t, c, kafka.GroupOptions{Group: group, Topics: []string{topic}, RetryBackoff: 20 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Metrics: metrics}, rec)
	testenv.Eventually(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return attempts >= 3 }, "retries")
	// The lag gauge shows the stuck records while the batch is retried.
	if lag := testutil.ToFloat64(metrics.Lag.WithLabelValues(group, topic, "0")); lag != 3 {
		t.Fatalf("lag %v while failing, want 3", lag)
	}
	// While failing, nothing may be committed.
	if off := committed(t, c, group, topic, 1)[0]; off > 0 {
		t.Fatalf("offset %d committed while the handler was failing", off)
	}
	mu.Lock()
	failing = false
	mu.Unlock()
	testenv.Eventually(t, 20*time.Second, func() bool { return len(rec.values()) == 3 }, "records processed after recovery")
	stop()
	if off := committed(t, c, group, topic, 1)[0]; off != 3 {
		t.Fatalf("committed offset %d, want 3", off)
	}
}

func TestPoisonRecordGoesToDeadLetterAndPartitionFlows(t *testing.T) {
	c := cfg(t)
	topic := testenv.Unique(t, "poison")
	dlq := testenv.Unique(t, "dlq")
	createTopic(t, c, topic, 1)
	createTopic(t, c, dlq, 1)
	produce(t, c, topic, "1", "2", "not-a-number", "4")

	var mu sync.Mutex
	var sum int
	h := kafka.HandlerFunc(func(ctx context.Context, b *kafka.Batch) error {
		for _, m := range b.Records {
			n, err := strconv.Atoi(string(m.Value))
			if err != nil {
				b.Reject(m, fmt.Errorf("decode value: %w", err))
				continue
			}
			mu.Lock()
			sum += n
			mu.Unlock()
		}
		return nil
	})
	group := testenv.Unique(t, "g")
	stop := runGroup(t, c, kafka.GroupOptions{Group: group, Topics: []string{topic}, DeadLetterTopic: dlq}, h)
	testenv.Eventually(t, 20*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return sum == 7 }, "records after the poison one processed")
	stop()

	// The dead letter carries the record and its coordinates and reason.
	consumer, err := sarama.NewConsumer(c.Brokers, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(dlq, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		h := map[string]string{}
		for _, rh := range m.Headers {
			h[string(rh.Key)] = string(rh.Value)
		}
		if string(m.Value) != "not-a-number" || h[kafka.HeaderDLQTopic] != topic || h[kafka.HeaderDLQPartition] != "0" ||
			h[kafka.HeaderDLQOffset] != "2" || h[kafka.HeaderDLQGroup] != group || !strings.Contains(h[kafka.HeaderDLQReason], "decode value") {
			t.Fatalf("dead letter %q with headers %v", m.Value, h)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no dead letter")
	}
	if off := committed(t, c, group, topic, 1)[0]; off != 4 {
		t.Fatalf("committed offset %d, want 4", off)
	}
}

// TestCrashBetweenEffectAndCommit kills (SIGKILL) a consumer process after it
// has made a record's effect but before it commits: the restarted consumer must
// see that record again, and no record may ever be skipped.
func TestCrashBetweenEffectAndCommit(t *testing.T) {
	c := cfg(t)
	topic := testenv.Unique(t, "crash")
	group := testenv.Unique(t, "g")
	createTopic(t, c, topic, 1)
	var want []string
	for i := range 50 {
		want = append(want, fmt.Sprintf("r%02d", i))
	}
	produce(t, c, topic, want...)

	effects := t.TempDir() + "/effects.log"
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KAFKA_TEST_CHILD=crash", "CHILD_BROKERS="+c.Brokers[0], "CHILD_TOPIC="+topic,
		"CHILD_GROUP="+group, "CHILD_EFFECTS="+effects, "CHILD_CRASH_AT=r20")
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState == nil || cmd.ProcessState.Success() {
		t.Fatalf("child should have been killed; output:\n%s", out)
	}
	first := readLines(t, effects)
	if len(first) == 0 || first[len(first)-1] != "r20" {
		t.Fatalf("child's last effect %v, want r20", first)
	}
	if off := committed(t, c, group, topic, 1)[0]; off > 20 {
		t.Fatalf("offset %d committed past the record whose commit never happened", off)
	}

	rec := &recorder{}
	stop := runGroup(t, c, kafka.GroupOptions{Group: group, Topics: []string{topic}}, rec)
	testenv.Eventually(t, 20*time.Second, func() bool { v := rec.values(); return len(v) > 0 && v[len(v)-1] == "r49" }, "restarted consumer reaches the end")
	stop()
	again := rec.values()
	if again[0] > "r20" {
		t.Fatalf("restart began at %s: the uncommitted r20 was skipped", again[0])
	}
	seen := map[string]bool{}
	for _, v := range append(first, again...) {
		seen[v] = true
	}
	for _, v := range want {
		if !seen[v] {
			t.Fatalf("record %s never processed", v)
		}
	}
}

// crashChild consumes one record per batch, appends its value to the effects
// file (fsynced), and SIGKILLs itself right after the effect of CHILD_CRASH_AT.
func crashChild() int {
	c := kafka.Config{Brokers: []string{os.Getenv("CHILD_BROKERS")}}
	f, err := os.OpenFile(os.Getenv("CHILD_EFFECTS"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := kafka.HandlerFunc(func(ctx context.Context, b *kafka.Batch) error {
		for _, m := range b.Records {
			fmt.Fprintln(f, string(m.Value))
			_ = f.Sync()
			if string(m.Value) == os.Getenv("CHILD_CRASH_AT") {
				p, _ := os.FindProcess(os.Getpid())
				_ = p.Kill()
				select {}
			}
		}
		return nil
	})
	g, err := kafka.NewGroup(c, kafka.GroupOptions{Group: os.Getenv("CHILD_GROUP"), Topics: []string{os.Getenv("CHILD_TOPIC")}, MaxBatch: 1}, h, zap.NewNop())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := g.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	return 0
}

func readLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		out = append(out, s.Text())
	}
	return out
}

func TestSASLSCRAM(t *testing.T) {
	k, err := testenv.StartKafka(1, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "admin", "right-password"))
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	good := kafka.Config{Brokers: k.Brokers, SASLMechanism: kafka.MechanismSHA256, SASLUser: "admin", SASLPassword: "right-password"}
	cl, err := kafka.NewClient(good)
	if err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := kafka.Ping(context.Background(), cl); err != nil {
		t.Fatalf("ping: %v", err)
	}
	cl.Close()

	bad := good
	bad.SASLPassword = "wrong"
	start := time.Now()
	_, err = kafka.NewClient(bad)
	if !errors.Is(err, kafka.ErrAuth) || !strings.Contains(err.Error(), `"admin"`) {
		t.Fatalf("wrong password: got %v, want an authentication error naming the user", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("wrong password took %s to fail", d)
	}
}

func TestConfigValidateNamesTheSetting(t *testing.T) {
	tests := []struct {
		name string
		c    kafka.Config
		want string
	}{
		{"no brokers", kafka.Config{}, "KAFKA_BROKERS"},
		{"no port", kafka.Config{Brokers: []string{"localhost"}}, "KAFKA_BROKERS"},
		{"bad mechanism", kafka.Config{Brokers: []string{"a:1"}, SASLMechanism: "GSSAPI"}, "KAFKA_SASL_MECHANISM"},
		{"no user", kafka.Config{Brokers: []string{"a:1"}, SASLMechanism: "SCRAM-SHA-512"}, "KAFKA_SASL_USER"},
		{"cert without key", kafka.Config{Brokers: []string{"a:1"}, TLSCertFile: "c.pem"}, "KAFKA_TLS_CERT_FILE"},
		{"unknown compression", kafka.Config{Brokers: []string{"a:1"}, Compression: "brotli"}, `KAFKA_COMPRESSION: "brotli" is not one of none, gzip, snappy, lz4, zstd`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestSendWithoutAck(t *testing.T) {
	c := cfg(t)
	topic := testenv.Unique(t, "noack")
	createTopic(t, c, topic, 1)
	p, err := kafka.NewProducer(c, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(context.Background(), &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("x")}, nil); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil { // flushes: the record is acknowledged without a callback
		t.Fatal(err)
	}
	rec := &recorder{}
	stop := runGroup(t, c, kafka.GroupOptions{Group: testenv.Unique(t, "g"), Topics: []string{topic}}, rec)
	testenv.Eventually(t, 20*time.Second, func() bool { return len(rec.values()) == 1 }, "record delivered")
	stop()
}

// TestCompression: each KAFKA_COMPRESSION codec is what the record
// batches carry on the wire (read back with a raw Fetch), and the records
// round-trip through it.
func TestCompression(t *testing.T) {
	for _, name := range append([]string{""}, kafka.Compressions...) {
		t.Run("codec="+name, func(t *testing.T) {
			c := cfg(t)
			c.Compression = name
			topic := testenv.Unique(t, "codec")
			createTopic(t, c, topic, 1)
			want := []string{strings.Repeat("compressible ", 40), "b", "c"}
			produce(t, c, topic, want...)

			cl, err := kafka.NewClient(c)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			leader, err := cl.Leader(topic, 0)
			if err != nil {
				t.Fatal(err)
			}
			req := &sarama.FetchRequest{Version: 4, MaxWaitTime: 100, MinBytes: 1, MaxBytes: 1 << 20}
			req.AddBlock(topic, 0, 0, 1<<20, -1)
			resp, err := leader.Fetch(req)
			if err != nil {
				t.Fatal(err)
			}
			block := resp.GetBlock(topic, 0)
			if block == nil || block.Err != sarama.ErrNoError || len(block.RecordsSet) == 0 {
				t.Fatalf("fetch: %+v", block)
			}
			wantCodec := name
			if wantCodec == "" {
				wantCodec = kafka.DefaultCompression
			}
			var got []string
			for _, rs := range block.RecordsSet {
				if rs.RecordBatch == nil {
					t.Fatal("not a record batch (message set v0/v1)")
				}
				if codec := rs.RecordBatch.Codec.String(); codec != wantCodec {
					t.Errorf("batch codec %s, want %s", codec, wantCodec)
				}
				for _, r := range rs.RecordBatch.Records {
					got = append(got, string(r.Value))
				}
			}
			if strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("records %q, want %q", got, want)
			}
		})
	}
}
