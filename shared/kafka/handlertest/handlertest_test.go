package handlertest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"backinstock/shared/kafka"
	"backinstock/shared/kafka/handlertest"
	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// marker is a handler whose effect is one entry per record in a Redis list,
// written once (a done marker guards it), and which rejects "poison".
type marker struct {
	rdb    *redis.Client
	prefix string
	slow   bool
	fault  fault
	wg     sync.WaitGroup
}

// fault is how a broken marker breaks the contract.
type fault int

const (
	correct fault = iota
	// late acknowledges the batch and writes the effect a moment later.
	late
	// dropsPoison skips a poison record instead of rejecting it.
	dropsPoison
	// deaf waits by sleeping, not noticing the batch is stopping.
	deaf
	// repeats has no done marker: the same batch twice doubles its effect.
	repeats
)

var _ kafka.Handler = (*marker)(nil)

func (h *marker) Handle(ctx context.Context, b *kafka.Batch) error {
	for i, rec := range b.Records {
		if string(rec.Value) == "poison" {
			if h.fault != dropsPoison {
				b.Reject(rec, errors.New("poison"))
			}
			continue
		}
		if h.fault == late {
			h.wg.Add(1)
			go func() {
				defer h.wg.Done()
				time.Sleep(100 * time.Millisecond)
				_ = h.effect(context.Background(), rec)
			}()
			continue
		}
		if err := h.effect(ctx, rec); err != nil {
			return err
		}
		if h.slow && h.fault == deaf && i == 0 {
			time.Sleep(handlertest.StopBound + time.Second)
		}
		if h.slow && h.fault != deaf && i < len(b.Records)-1 {
			if err := b.Wait(ctx, time.Hour); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *marker) effect(ctx context.Context, rec *sarama.ConsumerMessage) error {
	id := string(rec.Value)
	if h.fault != repeats {
		ok, err := h.rdb.SetNX(ctx, h.prefix+":done:"+id, 1, time.Hour).Result()
		if err != nil || !ok {
			return err
		}
	}
	return h.rdb.RPush(ctx, h.prefix+":effects", id).Err()
}

func factory(broken fault) handlertest.Factory {
	return func(tb testing.TB, o handlertest.Options) handlertest.Harness {
		rdb := redis.NewClient(&redis.Options{Addr: env.Redis(tb).Addr})
		tb.Cleanup(func() { _ = rdb.Close() })
		h := &marker{rdb: rdb, prefix: testenv.Unique(tb, "marker"), slow: o.Slow, fault: broken}
		tb.Cleanup(h.wg.Wait)
		var (
			mu  sync.Mutex
			seq int
		)
		next := func() string {
			mu.Lock()
			defer mu.Unlock()
			seq++
			return "r" + strconv.Itoa(seq)
		}
		return handlertest.Harness{
			Handler: h,
			Kafka:   kafka.Config{Brokers: env.Kafka(tb).Brokers},
			Topic:   h.prefix,
			Good: func(tb testing.TB, n int) []*sarama.ConsumerMessage {
				recs := make([]*sarama.ConsumerMessage, n)
				for i := range recs {
					recs[i] = &sarama.ConsumerMessage{Topic: h.prefix, Value: []byte(next())}
				}
				return recs
			},
			Poison: func(testing.TB) *sarama.ConsumerMessage {
				return &sarama.ConsumerMessage{Topic: h.prefix, Value: []byte("poison")}
			},
			Effects: func(tb testing.TB, recs []*sarama.ConsumerMessage) int {
				all, err := rdb.LRange(context.Background(), h.prefix+":effects", 0, -1).Result()
				if err != nil {
					tb.Fatalf("read effects: %v", err)
				}
				want := map[string]bool{}
				for _, r := range recs {
					want[string(r.Value)] = true
				}
				n := 0
				for _, id := range all {
					if want[id] {
						n++
					}
				}
				return n
			},
			Want: func(recs []*sarama.ConsumerMessage) int { return len(recs) },
		}
	}
}

func TestSuitePassesACorrectHandler(t *testing.T) {
	handlertest.Run(t, factory(correct))
}

// recorder is a testing.TB that records failures instead of failing the
// test, so the suite's verdict on a broken handler can be asserted.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	failed bool
	msgs   []string
}

func (r *recorder) fail(msg string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed = true
	r.msgs = append(r.msgs, msg)
}

func (r *recorder) Helper()                        {}
func (r *recorder) Fail()                          { r.fail("Fail") }
func (r *recorder) FailNow()                       { r.fail("FailNow"); runtime.Goexit() }
func (r *recorder) Error(args ...any)              { r.fail(fmt.Sprint(args...)) }
func (r *recorder) Errorf(format string, a ...any) { r.fail(fmt.Sprintf(format, a...)) }
func (r *recorder) Fatal(args ...any)              { r.Error(args...); runtime.Goexit() }
func (r *recorder) Fatalf(format string, a ...any) { r.Errorf(format, a...); runtime.Goexit() }
func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// record runs check under a recorder (in its own goroutine, since a fatal
// failure ends the goroutine) and returns it.
func record(t *testing.T, check func(testing.TB, handlertest.Factory), f handlertest.Factory) *recorder {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r, f)
	}()
	<-done
	return r
}

// TestSuiteFailsBrokenHandlers: each way of breaking the contract is caught
// by the check that owns it.
func TestSuiteFailsBrokenHandlers(t *testing.T) {
	tests := []struct {
		name  string
		fault fault
		check func(testing.TB, handlertest.Factory)
	}{
		{"acknowledges before its effect is durable", late, handlertest.Durable},
		{"skips poison silently", dropsPoison, handlertest.RejectsPoison},
		{"skips poison silently under a real group", dropsPoison, handlertest.DeadLetters},
		{"does not notice its batch stopping", deaf, handlertest.StopsPromptly},
		{"repeats its effect for the same batch", repeats, handlertest.Idempotent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := record(t, tt.check, factory(tt.fault))
			if !r.Failed() {
				t.Fatalf("the suite passed a handler that %s", tt.name)
			}
			t.Logf("the suite said: %q", r.msgs)
		})
	}
}

// The recorder itself must not invent failures: the correct handler passes
// through it.
func TestRecorderPassesACorrectHandler(t *testing.T) {
	if r := record(t, handlertest.Durable, factory(correct)); r.Failed() {
		t.Fatalf("a correct handler failed: %q", r.msgs)
	}
}
