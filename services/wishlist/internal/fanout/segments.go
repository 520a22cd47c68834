package fanout

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/kafka"
	"backinstock/shared/lease"
	"backinstock/topics/events"
)

const (
	// segmentLease is how long a worker holds a segment without renewing
	// it (every third of it): a killed worker's segments are taken over
	// after at most this long.
	segmentLease = 10 * time.Second
	// pollEvery is how often a worker looks for segments to take: the
	// owner for a segment another worker holds, Help for open rounds (one
	// ZRANGE of a small set per process).
	pollEvery = 100 * time.Millisecond
	// maxSegments caps a round's segments: enough for many processes to
	// share one restock, few enough that the plan stays one small reply.
	maxSegments = 64
	// helpDrain bounds the flush of a helper's segments at shutdown.
	helpDrain = 30 * time.Second
)

// round fans out the wishlisters after ck's cursor — at most limit of them,
// limit < 0 for all — and reports whether the set is exhausted (as stream).
// With Parallelism > 1 and enough wishlisters it splits them into segments
// of at least SegmentMin (store.Plan, at most maxSegments), each
// checkpointed on its own and paged under a lease by this worker and by
// every fan-out process of the region, each up to Parallelism segments at
// once (f.slots, shared with Help); ck keeps the plan (ck.Round) until
// every segment is done, then takes their counts and moves its cursor to
// the round's end. An interrupted round resumes each segment where its
// checkpoint stopped.
func (f *Fanout) round(ctx context.Context, b *kafka.Batch, ev events.RestockEvent, msg wishes.Message, ck *wishes.Checkpoint, limit int64, trace string) (bool, error) {
	id := f.checkpointID(ev.EventID)
	if ck.Round == nil {
		save := func(ctx context.Context, c wishes.Checkpoint) error { return f.saveCheckpoint(ctx, ev, c) }
		if f.cfg.Parallelism <= 1 {
			return f.stream(ctx, b.Stopping(), ev, msg, ck, limit, nil, save, trace)
		}
		n, ends, err := f.store.Plan(ctx, ev.SKU, f.cfg.Region, store.Cursor{Score: ck.Score, Member: ck.Member}, limit, maxSegments, f.cfg.SegmentMin)
		if err != nil {
			return false, err
		}
		if n == 0 {
			return true, nil
		}
		if len(ends) == 1 {
			return f.stream(ctx, b.Stopping(), ev, msg, ck, limit, nil, save, trace)
		}
		var segs []wishes.Segment
		from := wishes.Bound{Score: ck.Score, Member: ck.Member}
		for _, end := range ends {
			segs = append(segs, wishes.Segment{Checkpoint: wishes.Checkpoint{Score: from.Score, Member: from.Member}, To: end})
			if end != nil {
				from = *end
			}
		}
		ck.Round = &wishes.Round{ID: time.Now().UnixNano(), Segments: len(segs), End: ends[len(ends)-1]}
		job := &store.RoundJob{Round: ck.Round.ID, Event: ev, Trace: trace}
		if err := f.store.SaveRound(ctx, id, f.cfg.Region, *ck, segs, job, f.cfg.CheckpointTTL); err != nil {
			return false, err
		}
		f.log.Debug("round planned", zap.String("event_id", ev.EventID), zap.Int64("wishlisters", n), zap.Int("segments", len(segs)))
	}
	rd := *ck.Round
	job := roundJob{id: id, round: rd.ID, ev: ev, msg: msg, trace: trace}
	segs, err := f.page(ctx, b.Stopping(), job, rd.Segments)
	if err != nil {
		return false, err
	}
	// Every segment is done, by whichever worker: segs holds their counts.
	for _, sg := range segs {
		ck.Users += sg.Users
		ck.Records += sg.Records
		ck.Notified += sg.Notified
		if limit >= 0 {
			ck.WaveLeft -= sg.Notified
		}
	}
	end := rd.End
	if end == nil {
		last := segs[len(segs)-1]
		end = &wishes.Bound{Score: last.Score, Member: last.Member}
	}
	ck.Score, ck.Member = end.Score, end.Member
	ck.Round = nil
	if err := f.store.SaveRound(ctx, id, f.cfg.Region, *ck, nil, nil, f.cfg.CheckpointTTL); err != nil {
		return false, err
	}
	f.m.Checkpoints.Inc()
	return rd.End == nil, nil
}

// roundJob is one round as a segment's worker sees it.
type roundJob struct {
	id    string // checkpoint id
	round int64
	ev    events.RestockEvent
	msg   wishes.Message
	trace string
}

// page sees the n segments of a round this worker owns done, and returns
// them as last read (all done): it pages
// those it gets a slot and a lease for, and polls while other workers page
// the rest (taking over any whose lease runs out). One segment's failure
// stops the others, which checkpoint and return; so does stopping.
func (f *Fanout) page(ctx context.Context, stopping <-chan struct{}, job roundJob, n int) ([]wishes.Segment, error) {
	stop := make(chan struct{})
	var (
		once  sync.Once
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
	)
	halt := func() { once.Do(func() { close(stop) }) }
	fail := func(err error) {
		mu.Lock()
		if first == nil {
			first = err
		}
		mu.Unlock()
		halt()
	}
	defer halt()
	go func() {
		select {
		case <-stopping:
			halt()
		case <-stop:
		}
	}()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	var segs []wishes.Segment
poll:
	for {
		var err error
		if segs, err = f.store.Segments(ctx, job.id, f.cfg.Region, n); err != nil {
			fail(err)
			break
		}
		if !slices.ContainsFunc(segs, func(sg wishes.Segment) bool { return !sg.Done }) {
			break
		}
		f.take(ctx, stop, job, segs, "owner", &wg, func(err error) {
			if err != nil && !errors.Is(err, store.ErrLeaseLost) {
				fail(err)
			}
		})
		select {
		case <-stop:
			break poll
		case <-t.C:
		}
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	select {
	case <-stop:
		if first == nil {
			return nil, kafka.ErrInterrupted
		}
	default:
	}
	return segs, first
}

// take starts paging, in f.slots' free slots, each segment of segs not done
// whose lease it gets (none that another goroutine of this process or
// another worker holds); done gets each one's result.
func (f *Fanout) take(ctx context.Context, stop <-chan struct{}, job roundJob, segs []wishes.Segment, by string, wg *sync.WaitGroup, done func(error)) {
	for i, sg := range segs {
		if sg.Done {
			continue
		}
		select {
		case f.slots <- struct{}{}:
		default:
			return
		}
		l := f.store.SegmentLease(job.id, f.cfg.Region, job.round, i, lease.Token(), segmentLease)
		if ok, err := l.Hold(ctx); err != nil || !ok {
			// Held elsewhere, or Redis failing: the next poll tries again.
			<-f.slots
			continue
		}
		wg.Go(func() {
			defer func() { <-f.slots }()
			done(f.work(ctx, stop, job, i, l, by))
		})
	}
}

// work pages segment i under l, just taken, renewing it, until the segment
// is done (nil), stop closes (kafka.ErrInterrupted, progress checkpointed),
// the lease is lost (store.ErrLeaseLost) or something fails. It reads the
// segment after taking the lease, so it starts where the last holder's
// checkpoint stopped.
func (f *Fanout) work(ctx context.Context, stop <-chan struct{}, job roundJob, i int, l lease.Lease, by string) error {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_ = l.Release(rctx)
	}()
	sg, err := f.store.Segment(ctx, job.id, f.cfg.Region, i)
	if err != nil || sg.Done {
		return err
	}
	// halt stops the stream: closed when stop closes or the lease cannot
	// be renewed (lost: lapsed, maybe taken, finished and released by
	// another worker, so never taken back), and after the stream returned
	// (quit).
	halt, quit := make(chan struct{}), make(chan struct{})
	var lost atomic.Bool
	go func() {
		defer close(halt)
		t := time.NewTicker(segmentLease / 3)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-quit:
				return
			case <-t.C:
			}
			ok, err := l.Renew(ctx)
			if ok {
				last = time.Now()
				continue
			}
			if err == nil || time.Since(last) > segmentLease {
				f.log.Warn("segment lease lost; another worker takes it over", zap.String("event_id", job.ev.EventID), zap.Int("segment", i), zap.Error(err))
				lost.Store(true)
				return
			}
		}
	}()
	defer func() { close(quit); <-halt }()
	f.m.Segments.Inc()
	defer f.m.Segments.Dec()
	save := func(ctx context.Context, c wishes.Checkpoint) error {
		if err := f.store.SaveSegment(ctx, job.id, f.cfg.Region, job.round, i, l.Token, wishes.Segment{Checkpoint: c, To: sg.To}); err != nil {
			return err
		}
		f.m.Checkpoints.Inc()
		return nil
	}
	c := sg.Checkpoint
	if _, err = f.stream(ctx, halt, job.ev, job.msg, &c, -1, sg.To, save, job.trace); err == nil {
		c.Done = true
		if err = save(ctx, c); err == nil {
			f.m.SegmentsDone.WithLabelValues(by).Inc()
			return nil
		}
	}
	if lost.Load() || errors.Is(err, store.ErrLeaseLost) {
		return store.ErrLeaseLost
	}
	return err
}

// Help pages segments of the region's open rounds — restocks another
// worker of the group owns, or this one — in the worker's free slots
// (Parallelism in all, shared with the rounds it owns), until ctx ends;
// then it stops them, each checkpointing what was acknowledged, and
// returns. Run it beside the group in every fan-out process: it is how
// one restock uses several processes. A worker of Parallelism 1 pages no
// segments, so it helps nobody.
func (f *Fanout) Help(ctx context.Context) error {
	if f.cfg.Parallelism <= 1 {
		<-ctx.Done()
		return nil
	}
	// Work outlives ctx by the drain: stopping a segment waits for its
	// acks and writes its checkpoint.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(helpDrain, cancel) })
	defer stopDrain()
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if len(f.slots) == cap(f.slots) {
			continue
		}
		ids, err := f.store.OpenRounds(ctx, f.cfg.Region)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Debug("reading open rounds", zap.Error(err))
			}
			continue
		}
		for _, id := range ids {
			job, segs, err := f.store.Round(ctx, id, f.cfg.Region)
			if err != nil {
				f.log.Debug("reading an open round", zap.String("round", id), zap.Error(err))
				continue
			}
			if job == nil {
				// Folded: its owner closes it right after; this covers an
				// owner that died in between.
				_ = f.store.DropRound(ctx, id, f.cfg.Region)
				continue
			}
			rj := roundJob{id: id, round: job.Round, ev: job.Event, msg: wishes.MessageFor(job.Event, f.cfg.URLTemplate), trace: job.Trace}
			f.take(wctx, ctx.Done(), rj, segs, "helper", &wg, func(err error) {
				if err != nil && !errors.Is(err, kafka.ErrInterrupted) && !errors.Is(err, store.ErrLeaseLost) {
					f.log.Warn("helping with a segment failed; its checkpoint stays for the next worker", zap.String("event_id", rj.ev.EventID), zap.Error(err))
				}
			})
		}
	}
}
