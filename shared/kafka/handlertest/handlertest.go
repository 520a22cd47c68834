// Package handlertest is the contract every kafka.Handler must keep, as one
// suite that each handler's package runs against real servers (in the way
// watermill runs one pub/sub suite against every adapter). The runner
// commits a batch's offsets when Handle returns nil, so a handler must:
//
//   - return nil only once the effect of every record is durable
//     (Durable);
//   - return within StopBound once the batch is stopping, without relying on
//     its context, which the runner keeps alive for CloseTimeout
//     (StopsPromptly);
//   - make no second effect when the same batch is handed again, as it is
//     after a failure, a crash or a rebalance (Idempotent);
//   - reject a record that can never succeed and still handle the rest of
//     the batch (RejectsPoison), so that under a real Group the record
//     reaches the dead-letter topic and the partition flows on
//     (DeadLetters).
//
// Apart from DeadLetters, batches are built with kafka.NewBatch and handed
// to the handler directly, so each check controls exactly when the batch
// stops and what it replays.
package handlertest

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

// StopBound is how long a handler may take to return once its batch is
// stopping. A rebalance waits for every member's handlers, so a handler
// that outlives this holds up the whole group.
const StopBound = 5 * time.Second

// effectTimeout bounds the wait for a slow handler's first effect.
const effectTimeout = 30 * time.Second

// Options ask the factory for a variant of the handler.
type Options struct {
	// Slow asks for a handler that makes some of a batch's effects and then
	// waits a long time (far longer than StopBound) before the rest: a rate
	// limit, the pause between stock-aware waves.
	Slow bool
}

// Harness is one handler under test and what the suite needs to drive it
// and observe its effects.
type Harness struct {
	Handler kafka.Handler
	// Kafka is the cluster DeadLetters produces the records to and runs a
	// Group on; Topic is created there unless it exists.
	Kafka kafka.Config
	// Topic and Partition are what the suite's batches claim to come from.
	Topic     string
	Partition int32
	// Good makes n records the handler can handle, new ones on every call.
	Good func(tb testing.TB, n int) []*sarama.ConsumerMessage
	// Poison makes a record the handler must reject.
	Poison func(tb testing.TB) *sarama.ConsumerMessage
	// Effects counts the durable effects of recs as they stand now, read
	// from the servers (not from the handler), repeats included.
	Effects func(tb testing.TB, recs []*sarama.ConsumerMessage) int
	// Want is what Effects reports once recs have been handled exactly once.
	Want func(recs []*sarama.ConsumerMessage) int
}

// Factory builds a fresh handler, with its own topics, keys and servers'
// state, for one check.
type Factory func(tb testing.TB, o Options) Harness

// Run runs every check as a sub-test of t.
func Run(t *testing.T, f Factory) {
	for _, c := range []struct {
		name  string
		check func(testing.TB, Factory)
	}{
		{"Durable", Durable},
		{"StopsPromptly", StopsPromptly},
		{"StopsPromptlyWhenAlreadyStopping", StopsPromptlyWhenAlreadyStopping},
		{"Idempotent", Idempotent},
		{"RejectsPoison", RejectsPoison},
		{"DeadLetters", DeadLetters},
	} {
		t.Run(c.name, func(t *testing.T) { c.check(t, f) })
	}
}

func handle(tb testing.TB, h Harness, recs []*sarama.ConsumerMessage) *kafka.Batch {
	tb.Helper()
	b := kafka.NewBatch(h.Topic, h.Partition, recs, make(chan struct{}))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.Handler.Handle(ctx, b); err != nil {
		tb.Fatalf("Handle: %v", err)
	}
	return b
}

// Durable checks that every effect is durable at the moment Handle returns
// nil: the runner commits right then, and a crash after the commit would
// lose whatever was still on its way.
func Durable(tb testing.TB, f Factory) {
	h := f(tb, Options{})
	recs := h.Good(tb, 3)
	handle(tb, h, recs)
	if got, want := h.Effects(tb, recs), h.Want(recs); got != want {
		tb.Fatalf("Handle returned nil with %d of %d effects durable", got, want)
	}
}

// Idempotent checks that a batch handled a second time (a retry, or the
// replay after a crash between effect and commit) makes no second effect.
func Idempotent(tb testing.TB, f Factory) {
	h := f(tb, Options{})
	recs := h.Good(tb, 3)
	handle(tb, h, recs)
	handle(tb, h, recs)
	if got, want := h.Effects(tb, recs), h.Want(recs); got != want {
		tb.Fatalf("after the same batch twice: %d effects, want %d", got, want)
	}
}

// RejectsPoison checks that a poison record is rejected, neither failing the
// batch (it would be retried forever) nor skipped silently (it would be
// lost), and that the records around it are handled.
func RejectsPoison(tb testing.TB, f Factory) {
	h := f(tb, Options{})
	good := h.Good(tb, 2)
	poison := h.Poison(tb)
	b := handle(tb, h, []*sarama.ConsumerMessage{good[0], poison, good[1]})
	if got := b.Rejected(); !slices.Equal(got, []*sarama.ConsumerMessage{poison}) {
		tb.Errorf("rejected %d records %v; want only the poison one", len(got), got)
	}
	if got, want := h.Effects(tb, good), h.Want(good); got != want {
		tb.Errorf("good records around a poison one: %d effects, want %d", got, want)
	}
}

// StopsPromptly stops a slow handler's batch once part of its effect is
// durable and checks that Handle returns within StopBound, with its
// context still alive.
func StopsPromptly(tb testing.TB, f Factory) {
	h := f(tb, Options{Slow: true})
	recs := h.Good(tb, 3)
	stopping := make(chan struct{})
	b := kafka.NewBatch(h.Topic, h.Partition, recs, stopping)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h.Handler.Handle(ctx, b) }()

	deadline := time.Now().Add(effectTimeout)
	for h.Effects(tb, recs) == 0 {
		select {
		case err := <-done:
			tb.Fatalf("the slow handler returned (%v) before the batch was stopped", err)
		default:
		}
		if time.Now().After(deadline) {
			close(stopping)
			<-done
			tb.Fatalf("the slow handler made no effect within %s", effectTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stopped(tb, h, recs, stopping, done)
}

// StopsPromptlyWhenAlreadyStopping hands a slow handler a batch that is
// stopping from the start (revoked while it was being collected).
func StopsPromptlyWhenAlreadyStopping(tb testing.TB, f Factory) {
	h := f(tb, Options{Slow: true})
	recs := h.Good(tb, 3)
	stopping := make(chan struct{})
	b := kafka.NewBatch(h.Topic, h.Partition, recs, stopping)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	close(stopping)
	go func() { done <- h.Handler.Handle(ctx, b) }()
	stopped(tb, h, recs, nil, done)
}

// stopped closes stopping (unless nil) and checks how Handle ends: within
// StopBound, and with an error unless the whole effect is durable.
func stopped(tb testing.TB, h Harness, recs []*sarama.ConsumerMessage, stopping chan struct{}, done <-chan error) {
	tb.Helper()
	start := time.Now()
	if stopping != nil {
		close(stopping)
	}
	t := time.NewTimer(StopBound)
	defer t.Stop()
	var err error
	select {
	case err = <-done:
	case <-t.C:
		tb.Errorf("Handle still running %s after its batch began stopping", StopBound)
		err = <-done
	}
	took := time.Since(start)
	if err == nil {
		// Finishing is allowed, but then the runner commits: all of it
		// must be durable.
		if got, want := h.Effects(tb, recs), h.Want(recs); got != want {
			tb.Errorf("Handle returned nil on stopping after %s with %d of %d effects durable", took, got, want)
		}
		return
	}
	if !errors.Is(err, kafka.ErrInterrupted) {
		tb.Logf("Handle ended on stopping with %v (not ErrInterrupted: the runner logs it as a failure)", err)
	}
}

// DeadLetters produces good records around a poison one to Topic and runs
// the handler in a real Group with a dead-letter topic of its own: the
// poison record must arrive there, named by its source offset, and the good
// records' effects must follow.
func DeadLetters(tb testing.TB, f Factory) {
	h := f(tb, Options{})
	good := h.Good(tb, 2)
	poison := h.Poison(tb)
	dlq, group := testenv.Unique(tb, "dlq"), testenv.Unique(tb, "group")
	adm, err := kafka.NewClusterAdmin(h.Kafka)
	if err != nil {
		tb.Fatal(err)
	}
	defer adm.Close()
	for _, t := range []string{h.Topic, dlq} {
		err := adm.CreateTopic(t, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			tb.Fatalf("create topic %s: %v", t, err)
		}
	}

	prod, err := kafka.NewProducer(h.Kafka, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	defer prod.Close()
	var msgs []*sarama.ProducerMessage
	for _, r := range []*sarama.ConsumerMessage{good[0], poison, good[1]} {
		m := &sarama.ProducerMessage{Topic: h.Topic, Key: sarama.ByteEncoder(r.Key), Value: sarama.ByteEncoder(r.Value)}
		for _, rh := range r.Headers {
			kafka.ProducerHeaders(m).Set(string(rh.Key), string(rh.Value))
		}
		msgs = append(msgs, m)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := prod.SendAll(ctx, msgs); err != nil {
		tb.Fatalf("produce to %s: %v", h.Topic, err)
	}
	poisonAt := strconv.FormatInt(msgs[1].Offset, 10)

	g, err := kafka.NewGroup(h.Kafka, kafka.GroupOptions{Group: group, Topics: []string{h.Topic}, DeadLetterTopic: dlq}, h.Handler, zap.NewNop())
	if err != nil {
		tb.Fatal(err)
	}
	gctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(gctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			tb.Errorf("group: %v", err)
		}
	}()

	cl, err := kafka.NewClient(h.Kafka)
	if err != nil {
		tb.Fatal(err)
	}
	defer cl.Close()
	deadline := time.Now().Add(effectTimeout)
	for {
		end, err := cl.GetOffset(dlq, 0, sarama.OffsetNewest)
		if err != nil {
			tb.Fatal(err)
		}
		if end > 0 && h.Effects(tb, good) >= h.Want(good) {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("within %s: %d dead letters, %d of %d effects of the good records", effectTimeout, end, h.Effects(tb, good), h.Want(good))
		}
		time.Sleep(50 * time.Millisecond)
	}
	dl := firstRecord(tb, cl, dlq)
	hs := kafka.ConsumerHeaders(dl)
	if hs.Get(kafka.HeaderDLQTopic) != h.Topic || hs.Get(kafka.HeaderDLQOffset) != poisonAt || string(dl.Value) != string(poison.Value) {
		tb.Errorf("dead letter from %s@%s with value %q; want the poison record, %s@%s", hs.Get(kafka.HeaderDLQTopic), hs.Get(kafka.HeaderDLQOffset), dl.Value, h.Topic, poisonAt)
	}
	if got, want := h.Effects(tb, good), h.Want(good); got != want {
		tb.Errorf("good records around a poison one: %d effects, want %d", got, want)
	}
}

func firstRecord(tb testing.TB, cl sarama.Client, topic string) *sarama.ConsumerMessage {
	tb.Helper()
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		tb.Fatal(err)
	}
	defer cons.Close()
	pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		tb.Fatal(err)
	}
	defer pc.AsyncClose()
	select {
	case m := <-pc.Messages():
		return m
	case <-time.After(effectTimeout):
		tb.Fatalf("read %s: nothing within %s", topic, effectTimeout)
		return nil
	}
}
