// Package relay publishes the inventory outbox to Kafka: it reads each
// shard's outbox stream in order, produces a StockLevel record for every entry
// (inventory.stock.v1, key "sku|region") and a RestockEvent for every restock
// entry (inventory.restock.v1, key sku) with the idempotent acks=all
// producer, and trims the stream only after every record of the batch is
// acknowledged. While Kafka is down it keeps the entries and retries with a
// fresh producer; the API keeps writing to the outbox meanwhile.
//
// Delivery is at least once with one narrow window: a crash after Kafka
// acknowledged a batch and before the trim re-sends that batch at the next
// start. RestockEvent ids are deterministic (sku, region, episode), so
// consumers absorb such a repeat; within one process a batch that failed
// half-way re-sends only its unacknowledged records.
package relay

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"backinstock/services/inventory/internal/store"
	"backinstock/shared/backoff"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/shared/lease"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// The defaults of Options; the service's flags take theirs from here.
const (
	DefaultBatch        = 1000
	DefaultDrainTimeout = 10 * time.Second
	DefaultLeaseTTL     = 10 * time.Second
)

// Options configure the relay; zero values take the defaults.
type Options struct {
	// Batch is the most outbox entries read and published at once.
	Batch int
	// DrainTimeout bounds the flush at shutdown.
	DrainTimeout time.Duration
	// LeaseTTL is how long a shard's relay lease lasts without renewal; only
	// the lease holder publishes a shard, so replicas never publish the same
	// entries concurrently.
	LeaseTTL time.Duration
	Metrics  *Metrics
}

func (o *Options) setDefaults() {
	config.Default(&o.Batch, DefaultBatch)
	config.Default(&o.DrainTimeout, DefaultDrainTimeout)
	config.Default(&o.LeaseTTL, DefaultLeaseTTL)
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// Validate names every wrong setting; a zero value is not wrong, it takes
// the default.
func (o Options) Validate() error {
	var p config.Problems
	config.NotNegative(&p, "Batch", o.Batch)
	config.NotNegative(&p, "DrainTimeout", o.DrainTimeout)
	// The lease is set with PX, in whole milliseconds.
	if o.LeaseTTL != 0 && o.LeaseTTL < time.Millisecond {
		p.Addf("LeaseTTL", "must be at least 1ms, got %s", o.LeaseTTL)
	}
	return p.Err()
}

// Relay moves outbox entries to Kafka.
type Relay struct {
	st    *store.Store
	rdb   redis.UniversalClient
	o     Options
	log   *zap.Logger
	prods *producers

	mu      sync.Mutex
	lastErr error
}

// New builds a relay of st's outbox; nothing connects before Run.
func New(st *store.Store, kcfg kafka.Config, o Options, log *zap.Logger) (*Relay, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("configure relay: %w", err)
	}
	o.setDefaults()
	return &Relay{st: st, rdb: st.Client(), o: o, log: log, prods: &producers{cfg: kcfg, log: log}}, nil
}

// LastError is the last Kafka or Redis error the relay met, nil once a batch
// goes through again (readiness reports it).
func (r *Relay) LastError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

func (r *Relay) setErr(err error) {
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
}

// Run publishes until ctx ends, then flushes what is left in the outbox for
// up to DrainTimeout (the HTTP server has stopped by then, so nothing new
// arrives), and closes the producer.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, r.st.Shards())
	for sh := range r.st.Shards() {
		wg.Go(func() { errs[sh] = r.runShard(ctx, sh) })
	}
	wg.Go(func() { r.sample(ctx) })
	wg.Wait()
	if err := r.prods.close(); err != nil {
		errs = append(errs, fmt.Errorf("close producer: %w", err))
	}
	return errors.Join(errs...)
}

// sample refreshes the backlog gauges every second.
func (r *Relay) sample(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if n, age, err := Backlog(ctx, r.st); err == nil {
			r.o.Metrics.Backlog.Set(float64(n))
			r.o.Metrics.OldestAge.Set(age.Seconds())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Backlog counts the unpublished outbox entries of all st's shards and the
// age of the oldest one.
func Backlog(ctx context.Context, st *store.Store) (int64, time.Duration, error) {
	rdb, shards := st.Client(), st.Shards()
	var total int64
	var oldest time.Duration
	lens := make([]*redis.IntCmd, shards)
	firsts := make([]*redis.XMessageSliceCmd, shards)
	_, err := rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for sh := range shards {
			lens[sh] = p.XLen(ctx, store.OutboxKey(sh))
			firsts[sh] = p.XRangeN(ctx, store.OutboxKey(sh), "-", "+", 1)
		}
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("read outbox backlog: %w", err)
	}
	now := time.Now()
	for sh := range shards {
		total += lens[sh].Val()
		if msgs := firsts[sh].Val(); len(msgs) > 0 {
			if age := now.Sub(idTime(msgs[0].ID)); age > oldest {
				oldest = age
			}
		}
	}
	return total, oldest, nil
}

// idTime is the time Redis appended a stream entry (the id's millisecond part).
func idTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseInt(ms, 10, 64)
	return time.UnixMilli(n)
}

// nextID is the smallest stream id after id: the MINID that trims id itself.
func nextID(id string) string {
	ms, seq, _ := strings.Cut(id, "-")
	n, _ := strconv.ParseUint(seq, 10, 64)
	return ms + "-" + strconv.FormatUint(n+1, 10)
}

// shardState is what one shard's loop carries between batches.
type shardState struct {
	key     string
	lease   lease.Lease
	cursor  string           // id of the last entry read
	pending []redis.XMessage // read, not yet trimmed
	acked   map[string]bool  // records of pending already acknowledged
	trimTo  string           // set once pending is fully acknowledged
	leaseAt time.Time        // when the lease was last renewed
	// verify is set at start and after a failed batch: before sending,
	// look in Kafka for records of pending that did arrive.
	verify   bool
	outboxID string
	shard    int
}

// pendingRecord is one Kafka record of a pending outbox entry.
type pendingRecord struct {
	header string // HeaderOutbox value, also the key of shardState.acked
	msg    *sarama.ProducerMessage
	at     time.Time
}

func (r *Relay) runShard(ctx context.Context, shard int) error {
	st := &shardState{key: store.OutboxKey(shard), lease: lease.New(r.rdb, store.RelayLeaseKey(shard), lease.Token(), r.o.LeaseTTL), cursor: "0-0", acked: map[string]bool{}, verify: true, shard: shard}
	log := r.log.With(zap.Int("shard", shard))
	// drainCtx outlives ctx by DrainTimeout: the flush at shutdown.
	drainCtx, drainCancel := context.WithCancel(context.WithoutCancel(ctx))
	stopDrainTimer := context.AfterFunc(ctx, func() { time.AfterFunc(r.o.DrainTimeout, drainCancel) })
	defer func() {
		stopDrainTimer()
		drainCancel()
		r.releaseLease(context.WithoutCancel(ctx), st)
	}()
	op := ctx
	draining := false
	// Full jitter: relays of every replica and shard lose Kafka together and
	// must not come back to it in lockstep.
	wait := backoff.New(100*time.Millisecond, 5*time.Second)
	for {
		if !draining && ctx.Err() != nil {
			draining, op = true, drainCtx
		}
		if draining && op.Err() != nil {
			log.Warn("relay stopped before the outbox was drained; the rest is published at the next start")
			return nil
		}
		if err := r.holdLease(drainCtx, st); err != nil {
			if !draining && ctx.Err() == nil {
				log.Debug("relay lease not held", zap.Error(err))
			}
			if !wait.Wait(op) && draining {
				return nil
			}
			continue
		}
		if st.trimTo != "" {
			if err := r.rdb.XTrimMinID(drainCtx, st.key, st.trimTo).Err(); err != nil {
				r.fail(log, fmt.Errorf("trim outbox %s: %w", st.key, err))
				wait.Wait(op)
				continue
			}
			st.trimTo, st.pending = "", nil
			clear(st.acked)
		}
		if len(st.pending) == 0 {
			block := time.Second
			if draining {
				block = -1 // no BLOCK argument: answer at once
			}
			msgs, err := r.read(op, st, block)
			if err != nil {
				if op.Err() == nil {
					r.fail(log, fmt.Errorf("read outbox %s: %w", st.key, err))
					wait.Wait(op)
				}
				continue
			}
			if len(msgs) == 0 {
				if draining {
					return nil
				}
				continue
			}
			st.pending = msgs
			st.cursor = msgs[len(msgs)-1].ID
		}
		if err := r.publish(drainCtx, log, st); err != nil {
			r.fail(log, err)
			wait.Wait(op)
			continue
		}
		wait.Reset()
		r.setErr(nil)
		st.trimTo = nextID(st.pending[len(st.pending)-1].ID)
	}
}

func (r *Relay) fail(log *zap.Logger, err error) {
	if r.LastError() == nil {
		log.Warn("relay retrying", zap.Error(err))
	} else {
		log.Debug("relay retrying", zap.Error(err))
	}
	r.setErr(err)
	r.o.Metrics.Errors.Inc()
}

func (r *Relay) read(ctx context.Context, st *shardState, block time.Duration) ([]redis.XMessage, error) {
	res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{st.key, st.cursor}, Count: int64(r.o.Batch), Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		return nil, nil
	}
	return res[0].Messages, nil
}

// holdLease takes or renews the shard's lease (every third of its TTL).
func (r *Relay) holdLease(ctx context.Context, st *shardState) error {
	if time.Since(st.leaseAt) < r.o.LeaseTTL/3 {
		return nil
	}
	ok, err := st.lease.Hold(ctx)
	if err != nil {
		return fmt.Errorf("renew relay lease: %w", err)
	}
	if !ok {
		// Whoever holds it now publishes (and trims) this shard; what this
		// loop read is stale.
		st.leaseAt = time.Time{}
		st.pending, st.cursor, st.trimTo = nil, "0-0", ""
		clear(st.acked)
		return errors.New("another relay holds the lease")
	}
	if st.leaseAt.IsZero() {
		// Newly acquired (at start or taken over from a relay that stopped
		// renewing): the entries left in the outbox may have reached Kafka
		// before their trim, unless there are none.
		n, err := r.rdb.XLen(ctx, st.key).Result()
		st.verify = err != nil || n > 0
	}
	st.leaseAt = time.Now()
	return nil
}

// releaseLease lets another replica (or the next start) take the shard at
// once instead of waiting for the lease to run out.
func (r *Relay) releaseLease(ctx context.Context, st *shardState) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_ = st.lease.Release(ctx)
}

// publish produces the records of st.pending not yet acknowledged and waits
// for every ack; acknowledged records are remembered so a retry after a
// partial failure does not send them again.
func (r *Relay) publish(ctx context.Context, log *zap.Logger, st *shardState) error {
	if st.outboxID == "" {
		id, err := outboxID(ctx, r.rdb, st.shard)
		if err != nil {
			return err
		}
		st.outboxID = id
	}
	var recs []pendingRecord
	for _, m := range st.pending {
		stockMsg, restockMsg, err := records(m)
		if err != nil {
			// An entry the script wrote cannot be invalid unless the code
			// changed under it; blocking the outbox on it would stop every
			// restock behind it, so it is logged and skipped.
			log.Error("skipping undecodable outbox entry", zap.String("id", m.ID), zap.Error(err))
			r.o.Metrics.Skipped.Inc()
			continue
		}
		at := idTime(m.ID)
		base := st.outboxID + "/" + strconv.Itoa(st.shard) + "/" + m.ID + "/"
		for _, km := range []struct {
			kind string
			msg  *sarama.ProducerMessage
		}{{"s", stockMsg}, {"r", restockMsg}} {
			if km.msg == nil {
				continue
			}
			h := base + km.kind
			km.msg.Timestamp = at
			kafka.ProducerHeaders(km.msg).Set(HeaderOutbox, h)
			recs = append(recs, pendingRecord{header: h, msg: km.msg, at: at})
		}
	}
	if len(recs) == 0 {
		return nil
	}
	p, gen, err := r.prods.get()
	if err != nil {
		return err
	}
	if st.verify {
		t0 := time.Now()
		defer func() { log.Debug("looked for published records", zap.Duration("took", time.Since(t0))) }()
		if err := findPublished(ctx, p.Client(), recs, st.acked); err != nil {
			r.prods.broken(gen)
			return fmt.Errorf("look for published records of %s: %w", st.key, err)
		}
		st.verify = false
	}
	recs = slices.DeleteFunc(recs, func(rc pendingRecord) bool { return st.acked[rc.header] })
	if len(recs) == 0 {
		return nil
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	ok := make([]bool, len(recs))
	sendErr := r.prods.sending(gen, func() error {
		for i, rc := range recs {
			wg.Add(1)
			err := p.Send(ctx, rc.msg, func(m *sarama.ProducerMessage, err error) {
				defer wg.Done()
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("publish %s: %w", m.Topic, err))
					mu.Unlock()
					return
				}
				ok[i] = true
				r.o.Metrics.observe(m.Topic, time.Since(rc.at))
			})
			if err != nil {
				wg.Done()
				return err
			}
		}
		return nil
	})
	wg.Wait()
	for i, rc := range recs {
		if ok[i] {
			st.acked[rc.header] = true
		}
	}
	if sendErr == nil && len(errs) == 0 {
		return nil
	}
	st.verify = true
	r.prods.broken(gen)
	if sendErr != nil {
		errs = append(errs, sendErr)
	}
	return fmt.Errorf("publish outbox %s (%d of %d records not acknowledged): %w", st.key, len(recs)-countTrue(ok), len(recs), errs[0])
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

// records builds the Kafka records of one outbox entry: the stock level
// always, the restock event when the entry is a restock.
func records(m redis.XMessage) (stockMsg, restockMsg *sarama.ProducerMessage, err error) {
	e, err := store.DecodeOutboxEntry(m.Values)
	if err != nil {
		return nil, nil, err
	}
	lvl := events.StockLevel{SKU: e.SKU, Region: e.Region, Quantity: e.Quantity, Episode: e.Episode, At: e.At}
	val, err := events.Encode(lvl)
	if err != nil {
		return nil, nil, err
	}
	stockMsg = &sarama.ProducerMessage{
		Topic: catalog.Stock, Key: sarama.StringEncoder(events.StockKey(e.SKU, e.Region)),
		Value: sarama.ByteEncoder(val), Headers: kafka.RecordHeaders(events.Headers(events.SchemaStockLevel, e.Traceparent)), Timestamp: e.At,
	}
	if !e.Restock {
		return stockMsg, nil, nil
	}
	ev := events.RestockEvent{
		EventID: events.RestockEventID(e.SKU, e.Region, e.Episode), SKU: e.SKU, Region: e.Region,
		Quantity: e.Quantity, PreviousQuantity: e.Previous, Episode: e.Episode, OccurredAt: e.At,
		Product: e.Product, Delivery: e.Delivery,
	}
	val, err = events.Encode(ev)
	if err != nil {
		return nil, nil, err
	}
	restockMsg = &sarama.ProducerMessage{
		Topic: catalog.Restock, Key: sarama.StringEncoder(e.SKU),
		Value: sarama.ByteEncoder(val), Headers: kafka.RecordHeaders(events.Headers(events.SchemaRestockEvent, e.Traceparent)), Timestamp: e.At,
	}
	return stockMsg, restockMsg, nil
}
