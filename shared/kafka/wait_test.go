package kafka_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

func TestBatchWait(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name     string
		ctx      context.Context
		stopping <-chan struct{}
		d        time.Duration
		want     error
	}{
		{name: "elapses", ctx: context.Background(), stopping: make(chan struct{}), d: time.Millisecond, want: nil},
		{name: "no wait", ctx: context.Background(), stopping: make(chan struct{}), d: 0, want: nil},
		{name: "already stopping", ctx: context.Background(), stopping: closed, d: time.Hour, want: kafka.ErrInterrupted},
		{name: "already stopping, no wait", ctx: context.Background(), stopping: closed, d: 0, want: kafka.ErrInterrupted},
		{name: "context ended", ctx: canceled, stopping: make(chan struct{}), d: time.Hour, want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := kafka.NewBatch("t", 0, []*sarama.ConsumerMessage{{}}, tt.stopping)
			if err := b.Wait(tt.ctx, tt.d); !errors.Is(err, tt.want) {
				t.Errorf("Wait = %v; want %v", err, tt.want)
			}
		})
	}
}

func TestBatchHold(t *testing.T) {
	closed := make(chan struct{})
	close(closed)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name              string
		ctx               context.Context
		stopping, release <-chan struct{}
		want              error
	}{
		{name: "released already", ctx: context.Background(), stopping: make(chan struct{}), release: closed, want: nil},
		{name: "stopping wins over released", ctx: context.Background(), stopping: closed, release: closed, want: kafka.ErrInterrupted},
		{name: "stopping", ctx: context.Background(), stopping: closed, release: make(chan struct{}), want: kafka.ErrInterrupted},
		{name: "context ended", ctx: canceled, stopping: make(chan struct{}), release: make(chan struct{}), want: context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := kafka.NewBatch("t", 0, []*sarama.ConsumerMessage{{}}, tt.stopping)
			if err := b.Hold(tt.ctx, tt.release); !errors.Is(err, tt.want) {
				t.Errorf("Hold = %v; want %v", err, tt.want)
			}
		})
	}
	// A hold ends when its release closes.
	release := make(chan struct{})
	b := kafka.NewBatch("t", 0, []*sarama.ConsumerMessage{{}}, make(chan struct{}))
	done := make(chan error, 1)
	go func() { done <- b.Hold(context.Background(), release) }()
	close(release)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Hold = %v after the release", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Hold did not return at the release")
	}
}

func TestBatchWaitEndsWhenStopping(t *testing.T) {
	stopping := make(chan struct{})
	b := kafka.NewBatch("t", 0, []*sarama.ConsumerMessage{{}}, stopping)
	done := make(chan error, 1)
	go func() { done <- b.Wait(context.Background(), time.Hour) }()
	close(stopping)
	select {
	case err := <-done:
		if !errors.Is(err, kafka.ErrInterrupted) {
			t.Fatalf("Wait = %v; want ErrInterrupted", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return when the batch began stopping")
	}
}

// TestGroupShutdownInterruptsWait: a handler waiting on a paused partition
// (a rate limit) gives way to shutdown at once, long before CloseTimeout, and
// the batch stays uncommitted.
func TestGroupShutdownInterruptsWait(t *testing.T) {
	c := cfg(t)
	topic, group := testenv.Unique(t, "wait"), testenv.Unique(t, "g")
	createTopic(t, c, topic, 1)
	produce(t, c, topic, "a")
	waiting := make(chan struct{}, 1)
	returned := make(chan error, 1)
	h := kafka.HandlerFunc(func(ctx context.Context, b *kafka.Batch) error {
		waiting <- struct{}{}
		err := b.Wait(ctx, time.Hour)
		returned <- err
		return err
	})
	stop := runGroup(t, c, kafka.GroupOptions{Group: group, Topics: []string{topic}, CloseTimeout: time.Minute}, h)
	select {
	case <-waiting:
	case <-time.After(30 * time.Second):
		stop()
		t.Fatal("handler never called")
	}
	start := time.Now()
	stop()
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("shutdown took %v with a waiting handler", took)
	}
	if err := <-returned; !errors.Is(err, kafka.ErrInterrupted) {
		t.Errorf("Wait = %v; want ErrInterrupted", err)
	}
	if off := committed(t, c, group, topic, 1)[0]; off > 0 {
		t.Errorf("committed offset %d for an interrupted batch", off)
	}
}
