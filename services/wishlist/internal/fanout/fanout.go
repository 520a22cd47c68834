// Package fanout turns one restock into one notification request per
// wishlister and channel. It is the handler of a region's consumer group on
// inventory.restock.v1: it pages through the sku's wishlisters in the region
// (earliest first), produces asynchronously to notify.<region>.<channel>.v1,
// and checkpoints the cursor after every page whose records are all
// acknowledged, so a killed worker resumes where the acknowledged work ends
// and memory stays bounded by a few pages whatever the fan-out's size.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/shared/stockview"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// Config tunes a region's fan-out.
type Config struct {
	Region string
	// Policy is the default delivery policy; a restock may override it.
	Policy wishes.Policy
	// PageSize is the wishlisters read (and produced for) per page.
	PageSize int
	// InFlightPages is how many produced pages may await their acks and
	// checkpoint at once: it bounds memory and the duplicates after a crash
	// ((InFlightPages+1) × PageSize × channels).
	InFlightPages int
	// CheckpointTTL keeps checkpoints and done markers longer than the
	// restock topic's retention.
	CheckpointTTL time.Duration
	// URLTemplate links a notification whose restock has no product URL;
	// "{sku}" is replaced.
	URLTemplate string
	// Parallelism is how many segments of restocks this worker pages at
	// once, its own restocks' and other workers' (1: a restock is paged as
	// one cursor, and this worker helps nobody).
	Parallelism int
	// SegmentMin is the fewest wishlisters a segment gets: a restock (or
	// stock-aware wave) smaller than 2·SegmentMin is paged as one.
	SegmentMin int
	// CheckpointScope, when set, keeps this fan-out's progress and done
	// markers apart from the group's: a replay (`wishlist replay`) fans each
	// restock out again, once per scope, whatever the group did, and a rerun
	// of the same replay resumes or skips instead of producing again.
	CheckpointScope string
}

// Defaults are the tuning a zero field of Config gets; the wishlist
// command's flags default to them too.
func Defaults() Config {
	return Config{PageSize: 5000, InFlightPages: 3, Parallelism: 1, SegmentMin: 20000}
}

func (c *Config) setDefaults() {
	d := Defaults()
	config.Default(&c.PageSize, d.PageSize)
	config.Default(&c.InFlightPages, d.InFlightPages)
	config.Default(&c.Parallelism, d.Parallelism)
	config.Default(&c.SegmentMin, d.SegmentMin)
}

// Validate names every field that is wrong.
func (c Config) Validate() error {
	var p config.Problems
	config.NotNegative(&p, "PageSize", c.PageSize)
	config.NotNegative(&p, "InFlightPages", c.InFlightPages)
	config.NotNegative(&p, "Parallelism", c.Parallelism)
	config.NotNegative(&p, "SegmentMin", c.SegmentMin)
	return p.Err()
}

// Sender is what the fan-out needs of shared/kafka.Producer.
type Sender interface {
	Send(ctx context.Context, msg *sarama.ProducerMessage, ack kafka.Ack) error
}

// StockView is what the stock-aware policy needs of shared/stockview.View.
type StockView interface {
	CatchUp(ctx context.Context) error
	Get(sku string) (stockview.Level, bool)
}

// Metrics are the fan-out's Prometheus metrics.
type Metrics struct {
	InProgress  prometheus.Gauge
	FanOuts     *prometheus.CounterVec
	Produced    *prometheus.CounterVec
	Wishlisters prometheus.Counter
	Waves       prometheus.Counter
	Waits       prometheus.Counter
	WaitSeconds prometheus.Counter
	Checkpoints prometheus.Counter
	Segments    prometheus.Gauge
	// SegmentsDone counts segments finished, by "owner" (the worker whose
	// partition holds the restock) or "helper" (any worker, through Help).
	SegmentsDone *prometheus.CounterVec
}

// NewMetrics registers the metrics of region's fan-out with reg.
func NewMetrics(reg prometheus.Registerer, region string) *Metrics {
	l := prometheus.Labels{"region": region}
	m := &Metrics{
		InProgress: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backinstock_wishlist_fanouts_in_progress", Help: "Restock fan-outs being worked on.", ConstLabels: l}),
		FanOuts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_wishlist_fanouts_total",
			Help: "Restock fan-outs by outcome: completed, sold_out (a stock-aware fan-out stopped by the stock), already_done (a redelivered restock skipped).", ConstLabels: l}, []string{"outcome"}),
		Produced: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_wishlist_notifications_produced_total",
			Help: "Notification requests acknowledged by Kafka, by channel.", ConstLabels: l}, []string{"channel"}),
		Wishlisters: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_wishlist_fanout_wishlisters_total", Help: "Wishlisters paged through.", ConstLabels: l}),
		Waves:       prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_wishlist_fanout_waves_total", Help: "Stock-aware waves started.", ConstLabels: l}),
		Waits:       prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_wishlist_fanout_batch_waits_total", Help: "Waits between stock-aware waves.", ConstLabels: l}),
		WaitSeconds: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_wishlist_fanout_batch_wait_seconds_total", Help: "Time spent waiting between stock-aware waves.", ConstLabels: l}),
		Checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_wishlist_fanout_checkpoints_total", Help: "Checkpoints written.", ConstLabels: l}),
		Segments:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "backinstock_wishlist_fanout_segments_in_progress", Help: "Segments of restock fan-outs this worker is paging.", ConstLabels: l}),
		SegmentsDone: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_wishlist_fanout_segments_total",
			Help: "Segments this worker finished, by owner (its partition holds the restock) or helper.", ConstLabels: l}, []string{"by"}),
	}
	if reg != nil {
		reg.MustRegister(m.InProgress, m.FanOuts, m.Produced, m.Wishlisters, m.Waves, m.Waits, m.WaitSeconds, m.Checkpoints, m.Segments, m.SegmentsDone)
	}
	return m
}

// Fanout is the handler of one region's group.
type Fanout struct {
	cfg   Config
	store *store.Store
	prod  Sender
	view  StockView
	m     *Metrics
	log   *zap.Logger

	produced map[string]prometheus.Counter // by topic
	topics   map[string]string             // channel -> topic
	// slots bounds the segments it pages at once (Parallelism).
	slots chan struct{}
}

var _ kafka.Handler = (*Fanout)(nil)

// New builds the handler; a zero tuning field gets its default, a negative
// one is an error.
func New(cfg Config, st *store.Store, prod Sender, view StockView, m *Metrics, log *zap.Logger) (*Fanout, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fanout config: %w", err)
	}
	f := &Fanout{cfg: cfg, store: st, prod: prod, view: view, m: m, log: log.With(zap.String("region", cfg.Region)),
		produced: map[string]prometheus.Counter{}, topics: map[string]string{},
		slots: make(chan struct{}, cfg.Parallelism)}
	for _, c := range events.ChannelNames() {
		t := catalog.Notify(cfg.Region, c)
		f.topics[c] = t
		f.produced[t] = m.Produced.WithLabelValues(c)
	}
	return f, nil
}

// Handle fans out every restock of the batch that is for this region, one
// after the other. Records that cannot be read are dead-lettered; an
// interruption (rebalance, shutdown) leaves the batch uncommitted with its
// progress checkpointed.
func (f *Fanout) Handle(ctx context.Context, b *kafka.Batch) error {
	for _, rec := range b.Records {
		ev, err := events.DecodeRestockEvent(rec.Value)
		if err != nil {
			b.Reject(rec, err)
			continue
		}
		if string(rec.Key) != ev.SKU {
			b.Reject(rec, fmt.Errorf("record key %q is not the restock's sku %q", rec.Key, ev.SKU))
			continue
		}
		if ev.Region != f.cfg.Region {
			continue
		}
		msg := wishes.MessageFor(ev, f.cfg.URLTemplate)
		sample := msg.Notification("probe", events.ChannelApp, nil, time.Now())
		if err := sample.Validate(); err != nil {
			b.Reject(rec, fmt.Errorf("restock %s makes invalid notifications: %w", ev.EventID, err))
			continue
		}
		if err := f.fanOut(ctx, b, ev, msg, kafka.ConsumerHeaders(rec).Get(events.HeaderTraceparent)); err != nil {
			return err
		}
	}
	return nil
}

func (f *Fanout) fanOut(ctx context.Context, b *kafka.Batch, ev events.RestockEvent, msg wishes.Message, trace string) error {
	ck, err := f.store.Checkpoint(ctx, f.checkpointID(ev.EventID), f.cfg.Region)
	if err != nil {
		return err
	}
	if ck.Done {
		f.m.FanOuts.WithLabelValues("already_done").Inc()
		return nil
	}
	pol := wishes.Resolve(f.cfg.Policy, ev.Delivery)
	log := f.log.With(zap.String("event_id", ev.EventID), zap.String("sku", ev.SKU), zap.Int64("episode", ev.Episode), zap.String("mode", pol.Mode))
	log.Info("fan-out starting", zap.Int64("resume_users", ck.Users), zap.Int64("resume_records", ck.Records), zap.Int("resume_wave", ck.Wave))
	f.m.InProgress.Inc()
	defer f.m.InProgress.Dec()
	start := time.Now()

	outcome := "completed"
	if pol.Mode == events.DeliveryStockAware {
		outcome, err = f.waves(ctx, b, ev, msg, pol, &ck, trace)
	} else {
		_, err = f.round(ctx, b, ev, msg, &ck, -1, trace)
	}
	if err != nil {
		if errors.Is(err, kafka.ErrInterrupted) {
			log.Info("fan-out interrupted; progress checkpointed", zap.Int64("users", ck.Users), zap.Int64("records", ck.Records))
		}
		return err
	}
	ck.Done = true
	if err := f.saveCheckpoint(ctx, ev, ck); err != nil {
		return err
	}
	f.m.FanOuts.WithLabelValues(outcome).Inc()
	log.Info("fan-out finished", zap.String("outcome", outcome), zap.Int64("users", ck.Users), zap.Int64("records", ck.Records),
		zap.Int("waves", ck.Wave), zap.Duration("took", time.Since(start)))
	return nil
}

// waves runs a stock-aware fan-out: a first wave sized by the restock's
// quantity, then, after each interval, a further wave only while the stock
// view shows the same episode still in stock at or above the minimum.
func (f *Fanout) waves(ctx context.Context, b *kafka.Batch, ev events.RestockEvent, msg wishes.Message, pol wishes.Policy, ck *wishes.Checkpoint, trace string) (string, error) {
	for {
		switch {
		case ck.Wave == 0:
			ck.Wave, ck.WaveLeft = 1, wishes.WaveSize(pol.PerUnit, ev.Quantity)
			f.m.Waves.Inc()
		case ck.WaveLeft == 0:
			start := time.Now()
			err := b.Wait(ctx, pol.Interval)
			f.m.Waits.Inc()
			f.m.WaitSeconds.Add(time.Since(start).Seconds())
			if err != nil {
				return "", err
			}
			if err := f.view.CatchUp(ctx); err != nil {
				return "", err
			}
			now, known := f.view.Get(ev.SKU)
			lvl := wishes.Level{Quantity: now.Quantity, Episode: now.Episode, Known: known}
			size, ok := wishes.NextWave(pol, ev.Episode, lvl)
			if !ok {
				f.log.Info("stock-aware fan-out stops", zap.String("event_id", ev.EventID), zap.Int("after_wave", ck.Wave),
					zap.Int64("stock", lvl.Quantity), zap.Int64("stock_episode", lvl.Episode), zap.Bool("stock_known", lvl.Known))
				return "sold_out", nil
			}
			ck.Wave++
			ck.WaveLeft = size
			f.m.Waves.Inc()
			if err := f.saveCheckpoint(ctx, ev, *ck); err != nil {
				return "", err
			}
		}
		exhausted, err := f.round(ctx, b, ev, msg, ck, ck.WaveLeft, trace)
		if err != nil {
			return "", err
		}
		if exhausted {
			return "completed", nil
		}
	}
}

// checkpointID names a restock's progress: its event id, within the
// CheckpointScope when there is one.
func (f *Fanout) checkpointID(eventID string) string {
	if f.cfg.CheckpointScope == "" {
		return eventID
	}
	return eventID + "@" + f.cfg.CheckpointScope
}

func (f *Fanout) saveCheckpoint(ctx context.Context, ev events.RestockEvent, ck wishes.Checkpoint) error {
	if err := f.store.SaveCheckpoint(ctx, f.checkpointID(ev.EventID), f.cfg.Region, ck, f.cfg.CheckpointTTL); err != nil {
		return err
	}
	f.m.Checkpoints.Inc()
	return nil
}

// page is one page of produced notifications awaiting acknowledgement.
type page struct {
	ck      wishes.Checkpoint // progress once this page is acknowledged
	pending atomic.Int64
	done    chan struct{}
	mu      sync.Mutex
	err     error
}

func (p *page) release(n int64) {
	if p.pending.Add(-n) == 0 {
		close(p.done)
	}
}

func (p *page) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

// stream produces pages from ck's cursor until the wishlisters run out
// (exhausted) or pass end (a segment's last; nil: none), limit wishlisters
// have been notified (limit < 0: no limit; the rest is left in
// ck.WaveLeft), stopping closes, or something fails. After each page whose
// records are all acknowledged it saves the progress; on return ck is the
// last progress saved. Each page's records carry a child span of the
// restock's trace (a new trace without one).
func (f *Fanout) stream(ctx context.Context, stopping <-chan struct{}, ev events.RestockEvent, msg wishes.Message, ck *wishes.Checkpoint, limit int64, end *wishes.Bound, save func(context.Context, wishes.Checkpoint) error, trace string) (exhausted bool, err error) {
	inflight := make(chan *page, f.cfg.InFlightPages)
	var (
		failed atomic.Bool
		wg     sync.WaitGroup
		ckErr  error
		lastCk = *ck
		cur    = *ck
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for p := range inflight {
			if ckErr != nil {
				continue
			}
			select {
			case <-p.done:
			case <-ctx.Done():
				ckErr = ctx.Err()
				failed.Store(true)
				continue
			}
			if p.err != nil {
				ckErr = p.err
				failed.Store(true)
				continue
			}
			if err := save(ctx, p.ck); err != nil {
				ckErr = err
				failed.Store(true)
				continue
			}
			lastCk = p.ck
		}
	}()

	// pos is cur's place in the set, with the rank hint Page leaves.
	pos := store.Cursor{Score: cur.Score, Member: cur.Member}
	// Without a wave limit the next page is read while this one is
	// produced, so Redis and Kafka work at the same time.
	var pf *prefetcher
	if limit < 0 {
		pf = f.prefetch(ctx, ev.SKU, pos, end)
		defer pf.stop()
	}
	var loopErr error
loop:
	for !failed.Load() {
		select {
		case <-stopping:
			loopErr = kafka.ErrInterrupted
			break loop
		default:
		}
		n := f.cfg.PageSize
		if limit >= 0 {
			if cur.WaveLeft <= 0 {
				break loop
			}
			n = int(min(int64(n), cur.WaveLeft))
		}
		var ws []store.Wishlister
		if limit < 0 {
			ws, pos, err = pf.next(ctx)
		} else {
			ws, pos, err = f.store.Page(ctx, ev.SKU, f.cfg.Region, pos, end, n)
		}
		if err != nil {
			loopErr = err
			break loop
		}
		if len(ws) == 0 {
			exhausted = true
			break loop
		}
		now := time.Now()
		// One header slice per page, shared by its records: each page is a
		// child span of the restock's trace.
		hdrs := kafka.RecordHeaders(events.Headers(events.SchemaNotification, events.ChildTraceparent(trace)))
		// One buffer and one message array per page instead of two
		// allocations per record: at a million records the garbage
		// collector is the fan-out's largest cost otherwise.
		enc := wishes.NewEncoder(msg, now)
		type rec struct {
			user, channel string
			end           int
		}
		recs := make([]rec, 0, len(ws))
		arena := make([]byte, 0, len(ws)*400)
		var notified int64
		for i := range ws {
			w := &ws[i]
			if w.Entry == nil {
				continue
			}
			chans := wishes.Reach(w.Entry.Channels, w.Prefs)
			if len(chans) == 0 {
				continue
			}
			notified++
			for _, c := range chans {
				arena = enc.Append(arena, &msg, w.UserID, c, w.Prefs)
				recs = append(recs, rec{user: w.UserID, channel: c, end: len(arena)})
			}
		}
		all := make([]sarama.ProducerMessage, len(recs))
		msgs := make([]*sarama.ProducerMessage, len(recs))
		begin := 0
		for i, r := range recs {
			all[i] = sarama.ProducerMessage{Topic: f.topics[r.channel], Key: sarama.StringEncoder(r.user),
				Value: sarama.ByteEncoder(arena[begin:r.end:r.end]), Headers: hdrs}
			msgs[i] = &all[i]
			begin = r.end
		}
		cur.Score, cur.Member = pos.Score, pos.Member
		cur.Users += int64(len(ws))
		cur.Records += int64(len(msgs))
		cur.Notified += notified
		if limit >= 0 {
			cur.WaveLeft -= notified
		}
		f.m.Wishlisters.Add(float64(len(ws)))
		p := &page{ck: cur, done: make(chan struct{})}
		p.pending.Store(int64(len(msgs)) + 1) // +1 until every record is sent
		select {
		case inflight <- p:
		case <-ctx.Done():
			loopErr = ctx.Err()
			break loop
		}
		ack := f.ack(p)
		for i, m := range msgs {
			if err := f.prod.Send(ctx, m, ack); err != nil {
				p.fail(fmt.Errorf("produce notification: %w", err))
				p.release(int64(len(msgs) - i))
				break
			}
		}
		p.release(1)
	}
	close(inflight)
	wg.Wait()
	*ck = lastCk
	if loopErr != nil {
		return false, loopErr
	}
	if ckErr != nil {
		return false, ckErr
	}
	return exhausted, nil
}

// prefetcher reads pages one ahead of the producing loop.
type prefetcher struct {
	pages  chan prefetched
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type prefetched struct {
	ws    []store.Wishlister
	after store.Cursor
	err   error
}

func (f *Fanout) prefetch(ctx context.Context, sku string, cur store.Cursor, end *wishes.Bound) *prefetcher {
	ctx, cancel := context.WithCancel(ctx)
	pf := &prefetcher{pages: make(chan prefetched, 1), cancel: cancel}
	pf.wg.Add(1)
	go func() {
		defer pf.wg.Done()
		defer close(pf.pages)
		for {
			ws, after, err := f.store.Page(ctx, sku, f.cfg.Region, cur, end, f.cfg.PageSize)
			select {
			case pf.pages <- prefetched{ws: ws, after: after, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil || len(ws) == 0 {
				return
			}
			cur = after
		}
	}()
	return pf
}

func (pf *prefetcher) next(ctx context.Context) ([]store.Wishlister, store.Cursor, error) {
	select {
	case p, ok := <-pf.pages:
		if !ok {
			return nil, store.Cursor{}, errors.New("page reader stopped")
		}
		return p.ws, p.after, p.err
	case <-ctx.Done():
		return nil, store.Cursor{}, ctx.Err()
	}
}

// stop ends the reader and waits for it.
func (pf *prefetcher) stop() {
	pf.cancel()
	pf.wg.Wait()
}

func (f *Fanout) ack(p *page) kafka.Ack {
	return func(m *sarama.ProducerMessage, err error) {
		if err != nil {
			p.fail(fmt.Errorf("produce to %s: %w", m.Topic, err))
		} else {
			f.produced[m.Topic].Inc()
		}
		p.release(1)
	}
}
