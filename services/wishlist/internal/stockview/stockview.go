// Package stockview keeps a local, read-only view of inventory.stock.v1 (the
// compacted stock levels) for one region, so a stock-aware fan-out learns
// whether a sku is still in stock without calling the inventory service. It
// reads every partition from the oldest offset into a map; only the
// region's levels are kept, so memory grows with the region's skus, not with
// the stock changes.
package stockview

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/wishlist"
	"backinstock/topics/events"
)

// View is the region's current stock levels.
type View struct {
	cl     sarama.Client
	topic  string
	region string
	log    *zap.Logger

	mu     sync.Mutex
	levels map[string]wishlist.Level // by sku
	next   map[int32]int64           // next offset to read, per partition
}

// New builds a view over topic for region; Run fills it.
func New(cl sarama.Client, topic, region string, log *zap.Logger) *View {
	return &View{cl: cl, topic: topic, region: region, log: log, levels: map[string]wishlist.Level{}, next: map[int32]int64{}}
}

// Get returns the level of sku in the view's region.
func (v *View) Get(sku string) wishlist.Level {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.levels[sku]
}

// Run consumes every partition until ctx ends.
func (v *View) Run(ctx context.Context) error {
	parts, err := v.cl.Partitions(v.topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", v.topic, err)
	}
	cons, err := sarama.NewConsumerFromClient(v.cl)
	if err != nil {
		return fmt.Errorf("stock view consumer: %w", err)
	}
	defer cons.Close()
	var wg sync.WaitGroup
	errc := make(chan error, len(parts))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, p := range parts {
		pc, err := cons.ConsumePartition(v.topic, p, sarama.OffsetOldest)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("consume %s/%d: %w", v.topic, p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			errc <- v.consume(ctx, p, pc)
		}()
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		if err != nil && !errors.Is(err, context.Canceled) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (v *View) consume(ctx context.Context, p int32, pc sarama.PartitionConsumer) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-pc.Messages():
			if !ok {
				return fmt.Errorf("stock view %s/%d: consumer closed", v.topic, p)
			}
			v.apply(m)
		}
	}
}

func (v *View) apply(m *sarama.ConsumerMessage) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.next[m.Partition] = m.Offset + 1
	if m.Value == nil {
		// A tombstone: the (sku, region) is gone from the inventory.
		if sku, region, ok := cutLast(string(m.Key)); ok && region == v.region {
			delete(v.levels, sku)
		}
		return
	}
	l, err := events.DecodeStockLevel(m.Value)
	if err != nil {
		v.log.Warn("stock level skipped", zap.Int32("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
		return
	}
	if l.Region != v.region {
		return
	}
	if cur, ok := v.levels[l.SKU]; ok && cur.Episode > l.Episode {
		return // never step back to an older episode
	}
	v.levels[l.SKU] = wishlist.Level{Quantity: l.Quantity, Episode: l.Episode, Known: true}
}

func cutLast(key string) (string, string, bool) {
	for i := len(key) - 1; i >= 0; i-- {
		if key[i] == '|' {
			return key[:i], key[i+1:], true
		}
	}
	return "", "", false
}

// Sync waits until the view has read everything written to the topic before
// the call, so a decision made right after it sees the stock as it is now
// (for example a sell-out produced a moment ago).
func (v *View) Sync(ctx context.Context, timeout time.Duration) error {
	parts, err := v.cl.Partitions(v.topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", v.topic, err)
	}
	want := make(map[int32]int64, len(parts))
	for _, p := range parts {
		end, err := v.cl.GetOffset(v.topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("end offset of %s/%d: %w", v.topic, p, err)
		}
		oldest, err := v.cl.GetOffset(v.topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("oldest offset of %s/%d: %w", v.topic, p, err)
		}
		if end > oldest {
			want[p] = end
		}
	}
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		if v.caughtUp(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stock view of %s not caught up within %s", v.topic, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (v *View) caughtUp(want map[int32]int64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	for p, end := range want {
		// Compaction never touches the active segment, so the record at
		// end-1 of a non-empty partition exists and will be read.
		if v.next[p] < end {
			return false
		}
	}
	return true
}
