package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/shared/backoff"
	"backinstock/shared/config"
)

// WindowOptions bound a replay: the records of Topics timestamped in
// [From, To), handed to a Handler by a group-less reader.
type WindowOptions struct {
	// Name stands for the group in metrics and logs, e.g.
	// "notifier.us-east-1.replay": the replay has no group of its own.
	Name   string
	Topics []string
	// From and To bound the record timestamps, To excluded; To must be after From.
	From, To time.Time
	// MaxBatch caps the records per Handle call (default 500).
	MaxBatch int
	// RetryBackoff and MaxBackoff bound the waits before a failed batch is
	// handed again (defaults 100ms, 5s), as in the group runner.
	RetryBackoff, MaxBackoff time.Duration
	// Metrics, when set, counts the replayed records (ReplayRecords).
	Metrics *Metrics
}

func (o *WindowOptions) setDefaults() {
	config.Default(&o.MaxBatch, 500)
	config.Default(&o.RetryBackoff, 100*time.Millisecond)
	config.Default(&o.MaxBackoff, 5*time.Second)
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// Validate names what is missing or wrong.
func (o WindowOptions) Validate() error {
	var p config.Problems
	if o.Name == "" {
		p.Addf("name", "required")
	}
	if len(o.Topics) == 0 {
		p.Addf("topics", "at least one is required")
	}
	if !o.To.After(o.From) {
		p.Addf("--to", "%s is not after --from %s", o.To.Format(time.RFC3339Nano), o.From.Format(time.RFC3339Nano))
	}
	config.NotNegative(&p, "MaxBatch", o.MaxBatch)
	config.NotNegative(&p, "RetryBackoff", o.RetryBackoff)
	config.NotNegative(&p, "MaxBackoff", o.MaxBackoff)
	return p.Err()
}

// Beginning, as a replay's --from, is the oldest record.
const Beginning = "beginning"

// ParseWindow reads a replay's --from (an RFC 3339 time, or Beginning) and
// --to (an RFC 3339 time after it); the error names the flag. Beginning is
// the Unix epoch: ListOffsets at 0 answers the oldest record.
func ParseWindow(from, to string) (time.Time, time.Time, error) {
	var p config.Problems
	f, ferr := time.Parse(time.RFC3339Nano, from)
	switch {
	case from == Beginning:
		f, ferr = time.UnixMilli(0), nil
	case ferr != nil:
		p.Addf("--from", "%q is neither an RFC 3339 time nor %q", from, Beginning)
	}
	t, err := time.Parse(time.RFC3339Nano, to)
	switch {
	case err != nil:
		p.Addf("--to", "%q is not an RFC 3339 time", to)
	case ferr == nil && !t.After(f):
		p.Addf("--to", "%s is not after --from %s", to, from)
	}
	return f, t, p.Err()
}

// WindowPartition is what a replay read of one partition.
type WindowPartition struct {
	Topic     string
	Partition int32
	// Start and End are the offsets read, End excluded: the first record
	// timestamped at or after From, and the first at or after To (the
	// partition's end when there is none).
	Start, End int64
	// Records were handed to the handler; Outside were in [Start, End) but
	// timestamped outside the window (a producer's clock out of order) and
	// skipped; Rejected are the handler's rejects (poison), not dead-lettered
	// again.
	Records, Outside, Rejected int64
}

// idleEnd is how long a partition read waits, with the high-water mark at
// or past End, for a record below End before it takes the rest of the
// range for a gap (compacted away, a transaction marker) and stops.
const idleEnd = time.Second

// ReplayWindow hands every record of o.Topics timestamped in [o.From, o.To)
// to h, partition by partition in offset order (partitions in parallel), and
// returns when each partition's range is done. It joins no group and commits
// nothing, so the position of every consumer group is untouched: the
// records after To stay for whoever reads them normally. Handle's contract
// is the group runner's: nil only when the batch's effect is durable; an
// error hands the same batch again after a back-off, so the effect of a
// replay is the handler's idempotence (a replay run twice does nothing
// twice). Records the handler rejects are counted and logged but not
// dead-lettered: they were when first consumed. The range is found by
// ListOffsets by timestamp, so it is exact where timestamps grow along the
// partition (log-append time, or producers with sane clocks); a record
// timestamped out of order inside the range is skipped (Outside), one
// outside the range is not seen.
func ReplayWindow(ctx context.Context, c Config, o WindowOptions, h Handler, log *zap.Logger) ([]WindowPartition, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	sc.Consumer.Return.Errors = true
	sc.Consumer.MaxWaitTime = 20 * time.Millisecond
	sc.ChannelBufferSize = 256
	cl, err := newClient(c, sc)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return nil, fmt.Errorf("consumer for %s: %w", o.Name, err)
	}
	defer cons.Close()

	var parts []*WindowPartition
	for _, t := range o.Topics {
		ps, err := cl.Partitions(t)
		if err != nil {
			return nil, fmt.Errorf("partitions of %s: %w", t, err)
		}
		for _, p := range ps {
			wp := &WindowPartition{Topic: t, Partition: p}
			if wp.Start, wp.End, err = windowRange(cl, t, p, o.From, o.To); err != nil {
				return nil, err
			}
			parts = append(parts, wp)
		}
	}
	log = log.With(zap.String("replay", o.Name))
	log.Info("replay starting", zap.Time("from", o.From), zap.Time("to", o.To), zap.Strings("topics", o.Topics))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, wp := range parts {
		if wp.Start >= wp.End {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := replayPartition(ctx, cons, o, h, wp, log); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel() // one failed partition ends the run; rerun it whole
			}
		}()
	}
	wg.Wait()
	out := make([]WindowPartition, len(parts))
	for i, wp := range parts {
		out[i] = *wp
	}
	slices.SortFunc(out, func(a, b WindowPartition) int {
		if a.Topic != b.Topic {
			return strings.Compare(a.Topic, b.Topic)
		}
		return int(a.Partition - b.Partition)
	})
	// A partition that failed cancels the others: report its cause, not
	// their cancellation.
	var causes []error
	for _, e := range errs {
		if !errors.Is(e, context.Canceled) {
			causes = append(causes, e)
		}
	}
	if len(causes) == 0 {
		causes = errs
	}
	if err := errors.Join(causes...); err != nil {
		return out, fmt.Errorf("replay %s: %w", o.Name, err)
	}
	return out, nil
}

// windowRange finds the offsets [start, end) of the records timestamped in
// [from, to) on one partition.
func windowRange(cl sarama.Client, topic string, p int32, from, to time.Time) (start, end int64, err error) {
	hwm, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return 0, 0, fmt.Errorf("end offset of %s/%d: %w", topic, p, err)
	}
	// ListOffsets answers -1 when no record is timestamped at or after the
	// time: the range starts (or ends) at the partition's end.
	at := func(t time.Time) (int64, error) {
		off, err := cl.GetOffset(topic, p, t.UnixMilli())
		if err != nil {
			return 0, fmt.Errorf("offset of %s/%d at %s: %w", topic, p, t.Format(time.RFC3339Nano), err)
		}
		if off < 0 {
			return hwm, nil
		}
		return off, nil
	}
	if start, err = at(from); err != nil {
		return 0, 0, err
	}
	if end, err = at(to); err != nil {
		return 0, 0, err
	}
	return start, max(start, end), nil
}

func replayPartition(ctx context.Context, cons sarama.Consumer, o WindowOptions, h Handler, wp *WindowPartition, log *zap.Logger) error {
	pc, err := cons.ConsumePartition(wp.Topic, wp.Partition, wp.Start)
	if err != nil {
		return fmt.Errorf("consume %s/%d from %d: %w", wp.Topic, wp.Partition, wp.Start, err)
	}
	defer pc.AsyncClose()
	m := o.Metrics
	log = log.With(zap.String("topic", wp.Topic), zap.Int32("partition", wp.Partition))
	log.Info("partition replay starting", zap.Int64("start", wp.Start), zap.Int64("end", wp.End))
	next := wp.Start
	fromMs, toMs := o.From.UnixMilli(), o.To.UnixMilli()
	for next < wp.End {
		recs, err := windowBatch(ctx, pc, wp.End, &next, o.MaxBatch)
		if err != nil {
			return fmt.Errorf("consume %s/%d: %w", wp.Topic, wp.Partition, err)
		}
		in := recs[:0]
		for _, r := range recs {
			if ms := r.Timestamp.UnixMilli(); ms < fromMs || ms >= toMs {
				wp.Outside++
				continue
			}
			in = append(in, r)
		}
		m.ReplayRecords.WithLabelValues(o.Name, wp.Topic, "outside_window").Add(float64(len(recs) - len(in)))
		if len(in) == 0 {
			continue
		}
		b := NewBatch(wp.Topic, wp.Partition, in, ctx.Done())
		if err := handleWindowBatch(ctx, o, h, b, log); err != nil {
			return err
		}
		for _, r := range b.rejected {
			log.Warn("record rejected during replay; not dead-lettered again", zap.Int64("offset", r.msg.Offset), zap.String("reason", r.reason))
		}
		wp.Records += int64(len(in))
		wp.Rejected += int64(len(b.rejected))
		m.ReplayRecords.WithLabelValues(o.Name, wp.Topic, "handled").Add(float64(len(in) - len(b.rejected)))
		m.ReplayRecords.WithLabelValues(o.Name, wp.Topic, "rejected").Add(float64(len(b.rejected)))
	}
	log.Info("partition replay done", zap.Int64("records", wp.Records), zap.Int64("outside_window", wp.Outside), zap.Int64("rejected", wp.Rejected))
	return nil
}

// windowBatch waits for a first record below end, then takes what is
// already there, up to max, stopping at end; *next moves past what it
// read. It returns no records once the range is done.
func windowBatch(ctx context.Context, pc sarama.PartitionConsumer, end int64, next *int64, max int) ([]*sarama.ConsumerMessage, error) {
	var recs []*sarama.ConsumerMessage
	take := func(r *sarama.ConsumerMessage) {
		if r.Offset < end {
			recs = append(recs, r)
		}
		*next = r.Offset + 1
		if r.Offset >= end {
			*next = end
		}
	}
	tick := time.NewTicker(idleEnd / 2)
	defer tick.Stop()
	idle := 0
	for len(recs) == 0 && *next < end {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case err := <-pc.Errors():
			if err != nil {
				return nil, err
			}
		case r, ok := <-pc.Messages():
			if !ok {
				return nil, fmt.Errorf("closed before offset %d", end)
			}
			take(r)
			idle = 0
		case <-tick.C:
			if pc.HighWaterMarkOffset() >= end {
				if idle++; idle >= 2 {
					*next = end // the rest of the range holds no record
				}
			}
		}
	}
	for len(recs) > 0 && len(recs) < max && *next < end {
		select {
		case r, ok := <-pc.Messages():
			if !ok {
				return recs, nil
			}
			take(r)
		default:
			return recs, nil
		}
	}
	return recs, nil
}

// handleWindowBatch runs h on b until it succeeds, backing off between
// tries, as the group runner does; it gives up only when ctx ends or the
// handler is interrupted.
func handleWindowBatch(ctx context.Context, o WindowOptions, h Handler, b *Batch, log *zap.Logger) error {
	m := o.Metrics
	wait := backoff.New(o.RetryBackoff, o.MaxBackoff)
	for attempt := 1; ; attempt++ {
		b.rejected = b.rejected[:0]
		start := time.Now()
		err := h.Handle(ctx, b)
		m.HandleSeconds.WithLabelValues(o.Name, b.Topic).Observe(time.Since(start).Seconds())
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrInterrupted) || ctx.Err() != nil {
			return fmt.Errorf("%s/%d at offset %d: %w", b.Topic, b.Partition, b.Records[0].Offset, errors.Join(err, ctx.Err()))
		}
		m.Retries.WithLabelValues(o.Name, b.Topic).Inc()
		log.Warn("replay batch failed; retrying", zap.Int64("first_offset", b.Records[0].Offset), zap.Int("attempt", attempt),
			zap.Duration("retry_within", wait.Ceiling()), zap.Error(err))
		if !wait.Wait(ctx) {
			return fmt.Errorf("%s/%d at offset %d: %w", b.Topic, b.Partition, b.Records[0].Offset, errors.Join(err, ctx.Err()))
		}
	}
}
