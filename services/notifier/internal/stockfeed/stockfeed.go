// Package stockfeed fills a stock.View from inventory.stock.v1. It reads
// every partition from the oldest offset (the topic is compacted, so that is
// the latest level per key) without a consumer group: every notifier replica
// needs the whole view, and losing it on restart costs only a re-read.
package stockfeed

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/services/notifier/internal/stock"
	"backinstock/topics/events"
)

// Feed tails the stock topic into a view.
type Feed struct {
	client sarama.Client
	topic  string
	view   *stock.View
	log    *zap.Logger
	ready  chan struct{}
	once   sync.Once
}

// New prepares a feed over an existing client.
func New(client sarama.Client, topic string, view *stock.View, log *zap.Logger) *Feed {
	return &Feed{client: client, topic: topic, view: view, log: log, ready: make(chan struct{})}
}

// Ready is closed once the view has caught up with the high-water marks seen
// at start, so the notifier does not send notifications the view would have
// called stale.
func (f *Feed) Ready() <-chan struct{} { return f.ready }

// Run tails every partition until ctx ends.
func (f *Feed) Run(ctx context.Context) error {
	parts, err := f.client.Partitions(f.topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", f.topic, err)
	}
	cons, err := sarama.NewConsumerFromClient(f.client)
	if err != nil {
		return fmt.Errorf("stock consumer: %w", err)
	}
	defer cons.Close()
	var pending sync.WaitGroup
	var wg sync.WaitGroup
	errc := make(chan error, len(parts))
	for _, p := range parts {
		hwm, err := f.client.GetOffset(f.topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("high-water mark %s/%d: %w", f.topic, p, err)
		}
		pc, err := cons.ConsumePartition(f.topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("consume %s/%d: %w", f.topic, p, err)
		}
		caughtUp := hwm <= 0
		if !caughtUp {
			pending.Add(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			errc <- f.tail(ctx, pc, hwm, caughtUp, &pending)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		waitOrDone(ctx, &pending)
		f.once.Do(func() { close(f.ready) })
	}()
	wg.Wait()
	close(errc)
	var all []error
	for err := range errc {
		all = append(all, err)
	}
	return errors.Join(all...)
}

func (f *Feed) tail(ctx context.Context, pc sarama.PartitionConsumer, hwm int64, caughtUp bool, pending *sync.WaitGroup) error {
	for {
		select {
		case <-ctx.Done():
			if !caughtUp {
				pending.Done()
			}
			return nil
		case err, ok := <-pc.Errors():
			if ok {
				f.log.Warn("stock feed error", zap.Error(err))
			}
		case m, ok := <-pc.Messages():
			if !ok {
				if !caughtUp {
					pending.Done()
				}
				return nil
			}
			if len(m.Value) > 0 {
				l, err := events.DecodeStockLevel(m.Value)
				if err != nil {
					f.log.Warn("undecodable stock level skipped", zap.Int32("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
				} else {
					f.view.Apply(l)
				}
			}
			if !caughtUp && m.Offset+1 >= hwm {
				caughtUp = true
				pending.Done()
			}
		}
	}
}

func waitOrDone(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		<-done
	}
}
