package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"backinstock/shared/kafka"
	"backinstock/topics/events"
)

// deadLetterReader reads the dead-letter topic and the source topics.
type deadLetterReader struct {
	cfg  kafka.Config
	cl   sarama.Client
	cons sarama.Consumer
}

func (f *deadLetterFlags) reader() (*deadLetterReader, error) {
	cfg, err := f.kafkaConfig()
	if err != nil {
		return nil, err
	}
	// A read ends on a fetch that finds nothing more; the broker holds it
	// for MaxWaitTime (sarama: 500 ms), once per partition read.
	cl, err := kafka.NewClientWith(cfg, func(sc *sarama.Config) { sc.Consumer.MaxWaitTime = 20 * time.Millisecond }) // its errors name the brokers
	if err != nil {
		return nil, err
	}
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("kafka consumer: %w", err)
	}
	return &deadLetterReader{cfg: cfg, cl: cl, cons: cons}, nil
}

func (r *deadLetterReader) close() {
	_ = r.cons.Close()
	_ = r.cl.Close()
}

// stallTimeout bounds a read that makes no progress (a leader gone).
const stallTimeout = 30 * time.Second

// scan hands fn the records of topic/part from start to end (exclusive),
// until fn returns false.
func (r *deadLetterReader) scan(ctx context.Context, topic string, part int32, start, end int64, fn func(*sarama.ConsumerMessage) bool) error {
	if start >= end {
		return nil
	}
	pc, err := r.cons.ConsumePartition(topic, part, start)
	if err != nil {
		return fmt.Errorf("read %s/%d from %d: %w", topic, part, start, err)
	}
	defer pc.Close()
	stall := time.NewTimer(stallTimeout)
	defer stall.Stop()
	for {
		select {
		case m := <-pc.Messages():
			if !fn(m) || m.Offset+1 >= end {
				return nil
			}
			stall.Reset(stallTimeout)
		case e := <-pc.Errors():
			return fmt.Errorf("read %s/%d: %w", topic, part, e)
		case <-stall.C:
			return fmt.Errorf("read %s/%d: no record for %s, still short of offset %d", topic, part, stallTimeout, end)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// bounds are a partition's oldest kept offset and its end (high-water mark).
func (r *deadLetterReader) bounds(topic string, part int32) (oldest, end int64, err error) {
	if oldest, err = r.cl.GetOffset(topic, part, sarama.OffsetOldest); err != nil {
		return 0, 0, fmt.Errorf("oldest offset of %s/%d: %w", topic, part, err)
	}
	if end, err = r.cl.GetOffset(topic, part, sarama.OffsetNewest); err != nil {
		return 0, 0, fmt.Errorf("end of %s/%d: %w", topic, part, err)
	}
	return oldest, end, nil
}

// deadLetters reads the dead letters df selects, the oldest first (by time,
// then position), at most df.limit of them.
func (r *deadLetterReader) deadLetters(ctx context.Context, topic string, df deadLetterFilter) ([]*deadLetter, error) {
	parts, err := r.cl.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	// Partitions are read concurrently: each read costs a few fetch round
	// trips however short it is.
	found := make([][]*deadLetter, len(parts))
	errs := make([]error, len(parts))
	var wg sync.WaitGroup
	for i, p := range parts {
		wg.Go(func() { found[i], errs[i] = r.partitionDeadLetters(ctx, topic, p, df) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := slices.Concat(found...)
	slices.SortStableFunc(out, func(a, b *deadLetter) int {
		if c := a.Time.Compare(b.Time); c != 0 {
			return c
		}
		if a.At.Partition != b.At.Partition {
			return int(a.At.Partition - b.At.Partition)
		}
		return int(a.At.Offset - b.At.Offset)
	})
	if df.limit > 0 && len(out) > df.limit {
		out = out[:df.limit]
	}
	return out, nil
}

func (r *deadLetterReader) partitionDeadLetters(ctx context.Context, topic string, p int32, df deadLetterFilter) ([]*deadLetter, error) {
	oldest, end, err := r.bounds(topic, p)
	if err != nil {
		return nil, err
	}
	start := oldest
	if !df.since.IsZero() {
		// The first record at or after --since: what comes before it is
		// older (ListOffsets by time), so it is not read at all.
		o, err := r.cl.GetOffset(topic, p, max(df.since.UnixMilli(), 0))
		if err != nil {
			return nil, fmt.Errorf("offset of %s/%d at %s: %w", topic, p, df.since.Format(time.RFC3339), err)
		}
		if o < 0 {
			return nil, nil // nothing that recent
		}
		start = max(start, o)
	}
	var out []*deadLetter
	err = r.scan(ctx, topic, p, start, end, func(m *sarama.ConsumerMessage) bool {
		if d := parseDeadLetter(m); df.match(d) {
			out = append(out, d)
		}
		return true
	})
	return out, err
}

// record reads the one record of topic at pos.
func (r *deadLetterReader) record(ctx context.Context, topic string, pos position) (*sarama.ConsumerMessage, error) {
	parts, err := r.cl.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("dead-letter topic %s: %w", topic, err)
	}
	if !slices.Contains(parts, pos.Partition) {
		return nil, fmt.Errorf("%s %s: the topic has no partition %d (it has %d)", topic, pos, pos.Partition, len(parts))
	}
	oldest, end, err := r.bounds(topic, pos.Partition)
	if err != nil {
		return nil, err
	}
	switch {
	case pos.Offset < oldest:
		return nil, fmt.Errorf("%s %s: no longer kept: partition %d starts at offset %d (retention)", topic, pos, pos.Partition, oldest)
	case pos.Offset >= end:
		return nil, fmt.Errorf("%s %s: no such record: partition %d ends before offset %d", topic, pos, pos.Partition, end)
	}
	var got *sarama.ConsumerMessage
	if err := r.scan(ctx, topic, pos.Partition, pos.Offset, pos.Offset+1, func(m *sarama.ConsumerMessage) bool {
		got = m
		return false
	}); err != nil {
		return nil, err
	}
	if got == nil || got.Offset != pos.Offset {
		return nil, fmt.Errorf("%s %s: no such record", topic, pos)
	}
	return got, nil
}

// redriveState is what a redrive does with one dead letter.
type redriveState int

const (
	redriveWrite     redriveState = iota // write a copy to the source
	redriveAlready                       // its source record has a redriven copy already
	redriveDuplicate                     // another selected dead letter names the same source record
	redriveRefused                       // beyond --max-redrives, or not a dead letter we can read
)

type redriveItem struct {
	d      *deadLetter
	state  redriveState
	note   string
	copyAt position // the copy written, or found (redriveAlready)
	msg    *sarama.ProducerMessage
}

type redrivePlan struct{ items []*redriveItem }

// planRedrive decides, for each dead letter, whether to write a copy.
//
// Idempotency: a copy carries the header dlq-redrive-of naming its source
// record (<partition>:<offset> in the source topic) and goes to the source
// record's own partition. Before writing, the partition is read for copies
// of the selected records, from the first record that can be one to its
// end; a record with a copy is skipped. A copy can only follow its source
// record (offset > the source offset) and is stamped no earlier than its
// dead letter's time (see copyOf), so the read starts at the later of the
// two: ListOffsets by that time, one round trip per partition, then usually
// a short read. Naming the source record rather than the dead letter also
// makes one copy of a record dead-lettered twice (the group runner writes
// the dead letter before committing, so a crash in between repeats it; two
// groups reading one topic may both reject it). A copy dead-lettered again
// is a new source record (its own position), so it can be redriven again,
// up to --max-redrives. Reading Kafka itself needs no other store, and the
// answer is what the source topic holds, not what some marker says; the
// one gap is two redrives of the same records at the same moment, which
// both find no copy: hence "run one redrive at a time" (consumers
// de-duplicate anyway, by deterministic ids).
func (r *deadLetterReader) planRedrive(ctx context.Context, dlTopic string, dls []*deadLetter, maxRedrives int, now time.Time) (*redrivePlan, error) {
	type sourceRecord struct {
		topic string
		at    position
	}
	type sourcePartition struct {
		topic string
		part  int32
	}
	plan := &redrivePlan{}
	first := map[sourceRecord]*redriveItem{}
	pending := map[sourcePartition][]*redriveItem{}
	var order []sourcePartition
	for _, d := range dls {
		it := &redriveItem{d: d}
		plan.items = append(plan.items, it)
		src := sourceRecord{d.SourceTopic, d.Source}
		switch {
		case d.Problem != "":
			it.state, it.note = redriveRefused, d.Problem
		case d.SourceTopic == dlTopic:
			it.state, it.note = redriveRefused, "its source is the dead-letter topic itself"
		case d.Redrives >= maxRedrives:
			it.state, it.note = redriveRefused, fmt.Sprintf("its record was redriven %d time(s) already (--max-redrives %d): fix what rejects it (%s), or raise --max-redrives",
				d.Redrives, maxRedrives, shortReason(d.Reason))
		case first[src] != nil:
			it.state, it.note = redriveDuplicate, fmt.Sprintf("the same source record as %s, which stands for both", first[src].d.At)
		default:
			first[src] = it
			sp := sourcePartition{d.SourceTopic, d.Source.Partition}
			if pending[sp] == nil {
				order = append(order, sp)
			}
			pending[sp] = append(pending[sp], it)
		}
	}
	copies := make([]map[string]int64, len(order))
	errs := make([]error, len(order))
	var wg sync.WaitGroup
	for i, sp := range order {
		wg.Go(func() { copies[i], errs[i] = r.findCopies(ctx, sp.topic, sp.part, pending[sp]) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, sp := range order {
		for _, it := range pending[sp] {
			if off, ok := copies[i][it.d.Source.String()]; ok {
				it.state, it.copyAt = redriveAlready, position{sp.part, off}
				continue
			}
			it.msg = copyOf(it.d, now)
		}
	}
	return plan, nil
}

// findCopies reads topic/part for copies of the items' source records,
// answering the offset of each copy found by its dlq-redrive-of value.
func (r *deadLetterReader) findCopies(ctx context.Context, topic string, part int32, items []*redriveItem) (map[string]int64, error) {
	oldest, end, err := r.bounds(topic, part)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	after, since := end, items[0].d.Time // the earliest source offset + 1, the earliest dead letter
	for _, it := range items {
		want[it.d.Source.String()] = true
		after = min(after, it.d.Source.Offset+1)
		if it.d.Time.Before(since) {
			since = it.d.Time
		}
	}
	byTime, err := r.cl.GetOffset(topic, part, max(since.UnixMilli(), 0))
	if err != nil {
		return nil, fmt.Errorf("offset of %s/%d at %s: %w", topic, part, since.Format(time.RFC3339), err)
	}
	found := map[string]int64{}
	if byTime < 0 {
		return found, nil // nothing stamped after the dead letters: no copy
	}
	start := max(oldest, after, byTime)
	err = r.scan(ctx, topic, part, start, end, func(m *sarama.ConsumerMessage) bool {
		if v, ok := kafka.ConsumerHeaders(m).Lookup(events.HeaderRedriveOf); ok && want[v] {
			if _, seen := found[v]; !seen {
				found[v] = m.Offset
			}
		}
		return true
	})
	return found, err
}

// diedHeaders are the headers the dead-letter writer adds: they describe
// where and why a record died, and a redriven copy is a live record again.
var diedHeaders = []string{events.HeaderDLQTopic, events.HeaderDLQPartition, events.HeaderDLQOffset, events.HeaderDLQGroup, events.HeaderDLQReason}

// copyOf is the record a redrive writes for d: its key, value and own
// headers, to the source record's partition (so it stays in order with the
// key's other records whatever partitioner wrote them), stamped no earlier
// than the dead letter (what findCopies relies on, whatever this machine's
// clock says).
func copyOf(d *deadLetter, now time.Time) *sarama.ProducerMessage {
	m := &sarama.ProducerMessage{Topic: d.SourceTopic, Partition: d.Source.Partition, Timestamp: now}
	if d.Time.After(now) {
		m.Timestamp = d.Time
	}
	if d.Key != nil {
		m.Key = sarama.ByteEncoder(d.Key)
	}
	if d.Value != nil {
		m.Value = sarama.ByteEncoder(d.Value)
	}
	for _, h := range d.Header {
		if h != nil && !slices.Contains(diedHeaders, string(h.Key)) {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: h.Key, Value: h.Value})
		}
	}
	hs := kafka.ProducerHeaders(m)
	hs.Set(events.HeaderRedrives, strconv.Itoa(d.Redrives+1))
	hs.Set(events.HeaderRedriveOf, d.Source.String())
	return m
}

// redrive writes the plan's copies (idempotent producer, acks=all) and
// records where each landed.
func (r *deadLetterReader) redrive(plan *redrivePlan) error {
	var msgs []*sarama.ProducerMessage
	for _, it := range plan.items {
		if it.state == redriveWrite {
			msgs = append(msgs, it.msg)
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	pc, err := kafka.SaramaProducerConfig(r.cfg, kafka.ProducerOptions{})
	if err != nil {
		return err
	}
	pc.Producer.Partitioner = sarama.NewManualPartitioner // each copy names its partition
	sp, err := sarama.NewSyncProducer(r.cfg.Brokers, pc)
	if err != nil {
		return fmt.Errorf("redrive producer: %w", err)
	}
	err = sp.SendMessages(msgs)
	if cerr := sp.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close redrive producer: %w", cerr)
	}
	if err != nil {
		return fmt.Errorf("write %d redriven records: %w (running the redrive again is safe: copies already written are found and skipped)", len(msgs), err)
	}
	for _, it := range plan.items {
		if it.state == redriveWrite {
			it.copyAt = position{it.msg.Partition, it.msg.Offset}
		}
	}
	return nil
}

// report prints one line per dead letter (refusals on stderr) and a count;
// any refusal fails the command.
func (plan *redrivePlan) report(dlTopic string, dryRun bool, maxRedrives int, stdout, stderr io.Writer) (int, error) {
	var counts [4]int
	for _, it := range plan.items {
		counts[it.state]++
		d := it.d
		switch it.state {
		case redriveWrite:
			if dryRun {
				fmt.Fprintf(stdout, "would redrive  %s %s -> %s partition %d (redrive %d of at most %d)\n", dlTopic, d.At, d.SourceTopic, d.Source.Partition, d.Redrives+1, maxRedrives)
			} else {
				fmt.Fprintf(stdout, "redriven       %s %s -> %s %s (redrive %d of at most %d)\n", dlTopic, d.At, d.SourceTopic, it.copyAt, d.Redrives+1, maxRedrives)
			}
		case redriveAlready:
			fmt.Fprintf(stdout, "already        %s %s: its source record %s %s has its copy at %s\n", dlTopic, d.At, d.SourceTopic, d.Source, it.copyAt)
		case redriveDuplicate:
			fmt.Fprintf(stdout, "duplicate      %s %s: %s\n", dlTopic, d.At, it.note)
		case redriveRefused:
			fmt.Fprintf(stderr, "refused        %s %s: %s\n", dlTopic, d.At, it.note)
		}
	}
	verb := "redriven"
	if dryRun {
		verb = "dry run, nothing written: would redrive"
	}
	fmt.Fprintf(stdout, "%s %d, already redriven %d, duplicates %d, refused %d\n", verb, counts[redriveWrite], counts[redriveAlready], counts[redriveDuplicate], counts[redriveRefused])
	if n := counts[redriveRefused]; n > 0 {
		return 0, fmt.Errorf("%d of %d dead letters refused (listed above)", n, len(plan.items))
	}
	return ExitOK, nil
}
