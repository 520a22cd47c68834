// Package stockview keeps a local, read-only view of inventory.stock.v1 (the
// compacted stock levels) for one region, so a service learns whether a sku
// is in stock without calling the inventory service. It reads every
// partition from the oldest offset, without a consumer group: every replica
// needs the whole view, and losing it on restart costs only a re-read. Only
// the region's levels are kept, so memory grows with the region's skus, not
// with the stock changes.
//
// The view follows the topic's compaction semantics: a tombstone (a record
// without a value) deletes its (sku, region), and a level never steps back to
// an older episode. CatchUp waits until the view has read up to the
// partitions' high-water marks read at the call, which is exact, unlike a
// guessed delay.
package stockview

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/shared/config"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// DefaultCatchUpTimeout is CatchUpTimeout's default: long enough to read the
// whole topic at start-up, short enough that a broker away is reported.
const DefaultCatchUpTimeout = 30 * time.Second

// Config says what a View reads.
type Config struct {
	// Region is the only region whose levels are kept.
	Region string
	// Topic is the stock topic; catalog.Stock unless a test names its own.
	Topic string
	// CatchUpTimeout bounds each CatchUp (DefaultCatchUpTimeout when zero).
	CatchUpTimeout time.Duration
}

func (c *Config) setDefaults() {
	config.Default(&c.Topic, catalog.Stock)
	config.Default(&c.CatchUpTimeout, DefaultCatchUpTimeout)
}

// Validate reports the first bad setting.
func (c Config) Validate() error {
	if !events.ValidRegion(c.Region) {
		return fmt.Errorf("stock view region %q: must match %s", c.Region, events.RegionPattern)
	}
	if c.CatchUpTimeout < 0 {
		return fmt.Errorf("stock view catch-up timeout %s: must not be negative", c.CatchUpTimeout)
	}
	return nil
}

// Level is what the view knows of a sku in its region.
type Level struct {
	Quantity int64
	Episode  int64
}

// ErrBehind is returned by CatchUp when the view has not read up to the
// high-water marks within the timeout.
var ErrBehind = errors.New("stock view behind")

// ErrStopped is returned by CatchUp once Run has returned: the view will not
// move any more.
var ErrStopped = errors.New("stock view stopped")

// View is the region's current stock levels.
type View struct {
	cl  sarama.Client
	cfg Config
	log *zap.Logger

	started chan struct{} // closed once Run consumes every partition
	stopped chan struct{} // closed when Run returns

	mu      sync.Mutex
	parts   []int32
	levels  map[string]Level // by sku
	next    map[int32]int64  // next offset to read, per partition
	changed chan struct{}    // closed on the next record, made by a waiter
}

// New builds a view over an existing client; Run fills it.
func New(cl sarama.Client, cfg Config, log *zap.Logger) (*View, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &View{
		cl: cl, cfg: cfg, log: log,
		started: make(chan struct{}), stopped: make(chan struct{}),
		levels: map[string]Level{}, next: map[int32]int64{},
	}, nil
}

// Get returns the level of sku in the view's region, and whether the view
// knows it.
func (v *View) Get(sku string) (Level, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	l, ok := v.levels[sku]
	return l, ok
}

// Len is the number of skus known.
func (v *View) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.levels)
}

// Run consumes every partition until ctx ends. The partitions are those of
// the topic at start: one added later is not read.
func (v *View) Run(ctx context.Context) error {
	defer close(v.stopped)
	parts, err := v.cl.Partitions(v.cfg.Topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", v.cfg.Topic, err)
	}
	cons, err := sarama.NewConsumerFromClient(v.cl)
	if err != nil {
		return fmt.Errorf("stock view consumer: %w", err)
	}
	defer cons.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, len(parts))
	for _, p := range parts {
		pc, err := cons.ConsumePartition(v.cfg.Topic, p, sarama.OffsetOldest)
		if err != nil {
			cancel()
			wg.Wait()
			return fmt.Errorf("consume %s/%d: %w", v.cfg.Topic, p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close() //nolint:errcheck // errors are only returned with Consumer.Return.Errors, logged in consume
			err := v.consume(ctx, p, pc)
			if err != nil {
				cancel() // one partition lost leaves the view wrong: stop all
			}
			errc <- err
		}()
	}
	v.mu.Lock()
	v.parts = parts
	v.mu.Unlock()
	close(v.started)
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (v *View) consume(ctx context.Context, p int32, pc sarama.PartitionConsumer) error {
	errs := pc.Errors()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-errs:
			// Only with Consumer.Return.Errors; sarama retries by itself.
			if !ok {
				errs = nil // closed with Messages, which ends the loop
				continue
			}
			v.log.Warn("stock view consumer error", zap.Int32("partition", p), zap.Error(err))
		case m, ok := <-pc.Messages():
			if !ok {
				return fmt.Errorf("stock view %s/%d: consumer closed", v.cfg.Topic, p)
			}
			v.apply(m)
		}
	}
}

func (v *View) apply(m *sarama.ConsumerMessage) {
	rec, err := decode(m)
	if err != nil {
		v.log.Warn("stock record skipped", zap.Int32("partition", m.Partition), zap.Int64("offset", m.Offset), zap.Error(err))
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.next[m.Partition] = m.Offset + 1
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
	if err == nil && rec.region == v.cfg.Region {
		v.put(rec)
	}
}

// record is one stock record, decoded.
type record struct {
	sku, region string
	level       Level
	tombstone   bool
}

func decode(m *sarama.ConsumerMessage) (record, error) {
	if m.Value == nil {
		sku, region, ok := events.ParseStockKey(string(m.Key))
		if !ok {
			return record{}, fmt.Errorf("tombstone key %q: not <sku>|<region>", m.Key)
		}
		return record{sku: sku, region: region, tombstone: true}, nil
	}
	l, err := events.DecodeStockLevel(m.Value)
	if err != nil {
		return record{}, err
	}
	return record{sku: l.SKU, region: l.Region, level: Level{Quantity: l.Quantity, Episode: l.Episode}}, nil
}

// put applies the topic's compaction semantics; v.mu held.
func (v *View) put(r record) {
	if r.tombstone {
		delete(v.levels, r.sku) // the (sku, region) is gone from the inventory
		return
	}
	if cur, ok := v.levels[r.sku]; ok && cur.Episode > r.level.Episode {
		return // never step back to an older episode
	}
	v.levels[r.sku] = r.level
}

// CatchUp waits until the view has read everything written to the topic
// before the call, so a decision made right after it sees the stock as it is
// now (a sell-out produced a moment ago included). It waits for Run to start,
// and at most Config.CatchUpTimeout in all.
func (v *View) CatchUp(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, v.cfg.CatchUpTimeout, ErrBehind)
	defer cancel()
	select {
	case <-v.started:
	case <-v.stopped:
		return fmt.Errorf("catch up with %s: %w", v.cfg.Topic, ErrStopped)
	case <-ctx.Done():
		return v.behind(ctx, nil)
	}
	v.mu.Lock()
	parts := v.parts
	v.mu.Unlock()
	want := make(map[int32]int64, len(parts))
	for _, p := range parts {
		end, err := v.cl.GetOffset(v.cfg.Topic, p, sarama.OffsetNewest)
		if err != nil {
			return fmt.Errorf("high-water mark of %s/%d: %w", v.cfg.Topic, p, err)
		}
		oldest, err := v.cl.GetOffset(v.cfg.Topic, p, sarama.OffsetOldest)
		if err != nil {
			return fmt.Errorf("oldest offset of %s/%d: %w", v.cfg.Topic, p, err)
		}
		// Compaction never touches the active segment, so the record at
		// end-1 of a non-empty partition exists and will be read.
		if end > oldest {
			want[p] = end
		}
	}
	for {
		v.mu.Lock()
		lag := v.lag(want)
		if lag == 0 {
			v.mu.Unlock()
			return nil
		}
		if v.changed == nil {
			v.changed = make(chan struct{})
		}
		changed := v.changed
		v.mu.Unlock()
		select {
		case <-changed:
		case <-v.stopped:
			return fmt.Errorf("catch up with %s: %w", v.cfg.Topic, ErrStopped)
		case <-ctx.Done():
			return v.behind(ctx, want)
		}
	}
}

// lag is the number of records still to read before want; v.mu held.
func (v *View) lag(want map[int32]int64) int64 {
	var n int64
	for p, end := range want {
		if next := v.next[p]; next < end {
			n += end - next
		}
	}
	return n
}

// behind explains a CatchUp that ended before the view caught up.
func (v *View) behind(ctx context.Context, want map[int32]int64) error {
	if !errors.Is(context.Cause(ctx), ErrBehind) {
		return fmt.Errorf("catch up with %s: %w", v.cfg.Topic, ctx.Err())
	}
	if want == nil {
		return fmt.Errorf("catch up with %s: %w after %s (not consuming yet)", v.cfg.Topic, ErrBehind, v.cfg.CatchUpTimeout)
	}
	v.mu.Lock()
	lag := v.lag(want)
	v.mu.Unlock()
	return fmt.Errorf("catch up with %s: %w after %s (%d records to go)", v.cfg.Topic, ErrBehind, v.cfg.CatchUpTimeout, lag)
}
