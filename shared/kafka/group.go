package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/shared/backoff"
	"backinstock/shared/config"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// Batch is a run of records from one partition, handed to a Handler in order.
type Batch struct {
	Topic     string
	Partition int32
	Records   []*sarama.ConsumerMessage

	stopping <-chan struct{}
	runner   *Group
	rejected []rejection
}

type rejection struct {
	msg    *sarama.ConsumerMessage
	reason string
}

// Reject sends msg to the dead-letter topic with reason instead of processing
// it. The dead letter is produced (acks=all) before the batch's offsets are
// committed, so a poison record is never lost and never blocks the partition.
func (b *Batch) Reject(msg *sarama.ConsumerMessage, reason error) {
	b.rejected = append(b.rejected, rejection{msg: msg, reason: reason.Error()})
}

// Stopping is closed when the group is rebalancing or shutting down. A long
// handler (a million-record fan-out) checkpoints and returns ErrInterrupted.
func (b *Batch) Stopping() <-chan struct{} { return b.stopping }

// Wait pauses fetching for this partition for d (a rate limit or an edge that
// is not acknowledging), so nothing buffers while the handler waits. It
// returns ErrInterrupted as soon as the batch is Stopping (at once if it
// already is): a waiting handler must not hold up a rebalance or shutdown.
// It returns ctx's error when ctx ends first.
func (b *Batch) Wait(ctx context.Context, d time.Duration) error {
	select {
	case <-b.stopping:
		return ErrInterrupted
	default:
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	return hold(ctx, b, t.C)
}

// Hold is Wait until release is closed instead of for a time: an
// operator's pause (shared/pause) holds a batch, its partition's fetching
// paused, until the channel is resumed.
func (b *Batch) Hold(ctx context.Context, release <-chan struct{}) error {
	select {
	case <-b.stopping:
		return ErrInterrupted
	default:
	}
	select {
	case <-release:
		return nil
	default:
	}
	return hold(ctx, b, release)
}

func hold[T any](ctx context.Context, b *Batch, release <-chan T) error {
	if b.runner != nil {
		b.runner.pause(b.Topic, b.Partition)
		defer b.runner.resume(b.Topic, b.Partition)
	}
	select {
	case <-release:
		// The release and the stop can be ready together; the stop wins, so
		// a handler never starts more work on a revoked partition.
		select {
		case <-b.stopping:
			return ErrInterrupted
		default:
			return nil
		}
	case <-b.stopping:
		return ErrInterrupted
	case <-ctx.Done():
		return ctx.Err()
	}
}

// NewBatch builds a batch outside a Group, for testing a Handler on its own
// (see shared/kafka/handlertest): closing stopping plays the session's end,
// and Wait pauses no fetching because there is none. Rejected tells what the
// handler rejected; nothing is dead-lettered.
func NewBatch(topic string, partition int32, records []*sarama.ConsumerMessage, stopping <-chan struct{}) *Batch {
	return &Batch{Topic: topic, Partition: partition, Records: records, stopping: stopping}
}

// Rejected lists the records rejected by the latest Handle call, in order.
func (b *Batch) Rejected() []*sarama.ConsumerMessage {
	out := make([]*sarama.ConsumerMessage, len(b.rejected))
	for i, r := range b.rejected {
		out[i] = r.msg
	}
	return out
}

// Last is the batch's last record.
func (b *Batch) Last() *sarama.ConsumerMessage { return b.Records[len(b.Records)-1] }

// ErrInterrupted is returned by a handler that stopped part-way because the
// batch is Stopping; the runner leaves the batch uncommitted without logging
// an error.
var ErrInterrupted = errors.New("interrupted by rebalance or shutdown")

// Handler processes batches. Handle returns nil only when the effect of every
// record (other than rejected ones) is durable; the runner then commits past
// the batch. A non-nil error makes the runner pause the partition, back off and
// hand the same batch again, so Handle must be idempotent.
type Handler interface {
	Handle(ctx context.Context, b *Batch) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, b *Batch) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, b *Batch) error { return f(ctx, b) }

// GroupOptions tune a Group; zero values take the defaults.
type GroupOptions struct {
	Group  string
	Topics []string
	// MaxBatch caps the records per Handle call (default 500).
	MaxBatch int
	// Linger is how long a batch waits for more records once it has one (default 5ms).
	Linger time.Duration
	// RetryBackoff bounds the first wait after a failed batch or session, the
	// bound doubling to MaxBackoff (defaults 100ms, 5s); each wait is drawn
	// below its bound (full jitter, shared/backoff), so replicas that failed
	// together do not retry together.
	RetryBackoff, MaxBackoff time.Duration
	// CloseTimeout bounds how long an in-flight batch may take after shutdown begins (default 30s).
	CloseTimeout time.Duration
	// DeadLetterTopic receives rejected records (default catalog.DeadLetter,
	// the one dead-letter topic of the catalogue).
	DeadLetterTopic string
	// SessionTimeout is how long the group waits for a silent member (a
	// killed process) before rebalancing its partitions (default 10s).
	SessionTimeout time.Duration
	// FetchMaxWait is how long a broker may hold a fetch waiting for data
	// (default 20ms). sarama's 500ms default puts up to half a second between
	// a record reaching Kafka and the consumer seeing it.
	FetchMaxWait time.Duration
	// RebalanceTimeout is how long the coordinator waits, once a rebalance
	// begins, for every member to rejoin; one that has not rejoined by then
	// is dropped from the group (default 20s). A member rejoins after its
	// next heartbeat (SessionTimeout/3) and its in-flight batches, and the
	// handlers give way to Batch.Stopping within seconds (the notifier's
	// longest wait is its 5 s publish timeout): 20 s is twice that, and it
	// bounds how long a member that never rejoins holds up the others.
	RebalanceTimeout time.Duration
	// InstanceID, when set, makes the member static (KIP-345): a restarted
	// replica rejoining under the same id takes its predecessor's place and
	// partitions at once, instead of waiting for the predecessor's session
	// to expire and a rebalance. It must be unique among the group's live
	// replicas and stable across a replica's restarts (a pod name); a second
	// live member with the same id fences the first, whose Run then fails.
	// A graceful shutdown still leaves the group at once (see Run).
	InstanceID string
	// Metrics, when set, records the runner's metrics.
	Metrics *Metrics

	// dialer, set only by tests (export_test.go), opens the group's
	// connections, so a test can cut a member off as a SIGKILL would.
	dialer dialer
}

type dialer interface {
	Dial(network, addr string) (net.Conn, error)
}

// joinLapse is how much longer than the rebalance timeout a member waits
// for its JoinGroup answer before it gives the connection up (Java's
// consumer: 5 s; more here, as kfake moves its deadline when a member
// joins late).
const joinLapse = 10 * time.Second

var instanceIDPattern = regexp.MustCompile(`^[0-9A-Za-z._-]{1,249}$`)

// CheckInstanceID tells whether id is a legal group.instance.id: 1 to 249
// characters of A-Z, a-z, 0-9, '.', '_' and '-' (Kafka's rule).
func CheckInstanceID(id string) error {
	if !instanceIDPattern.MatchString(id) {
		return fmt.Errorf("%q is not 1 to 249 characters of A-Z a-z 0-9 . _ -", id)
	}
	return nil
}

func (o *GroupOptions) setDefaults() {
	config.Default(&o.MaxBatch, 500)
	config.Default(&o.Linger, 5*time.Millisecond)
	config.Default(&o.RetryBackoff, 100*time.Millisecond)
	config.Default(&o.MaxBackoff, 5*time.Second)
	config.Default(&o.FetchMaxWait, 20*time.Millisecond)
	config.Default(&o.CloseTimeout, 30*time.Second)
	config.Default(&o.RebalanceTimeout, 20*time.Second)
	config.Default(&o.DeadLetterTopic, catalog.DeadLetter)
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
}

// Validate names what is missing or wrong; a zero tuning field takes its
// default, a negative one is refused.
func (o GroupOptions) Validate() error {
	var p config.Problems
	if o.Group == "" {
		p.Addf("group", "required")
	}
	if len(o.Topics) == 0 {
		p.Addf("topics", "at least one is required")
	}
	config.NotNegative(&p, "MaxBatch", o.MaxBatch)
	config.NotNegative(&p, "Linger", o.Linger)
	config.NotNegative(&p, "RetryBackoff", o.RetryBackoff)
	config.NotNegative(&p, "MaxBackoff", o.MaxBackoff)
	config.NotNegative(&p, "FetchMaxWait", o.FetchMaxWait)
	config.NotNegative(&p, "CloseTimeout", o.CloseTimeout)
	config.NotNegative(&p, "SessionTimeout", o.SessionTimeout)
	config.NotNegative(&p, "RebalanceTimeout", o.RebalanceTimeout)
	if o.InstanceID != "" {
		if err := CheckInstanceID(o.InstanceID); err != nil {
			p.Addf("InstanceID", "%v", err)
		}
	}
	return p.Err()
}

// Group runs a consumer group: one goroutine per claimed partition collects
// batches, calls the handler, dead-letters rejected records and then marks
// the batch's offset; a committer per session commits the marks promptly, and
// the session's end commits the last of them. Offsets are never committed for
// a batch whose handler failed.
type Group struct {
	opts    GroupOptions
	log     *zap.Logger
	handler Handler
	group   sarama.ConsumerGroup
	client  sarama.Client
	dlq     sarama.SyncProducer

	mu     sync.Mutex
	paused map[string]map[int32]int // nested pause counts
}

// NewGroup connects a consumer group and a dead-letter producer.
func NewGroup(c Config, o GroupOptions, h Handler, log *zap.Logger) (*Group, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.setDefaults()
	sc, err := groupSarama(c, o)
	if err != nil {
		return nil, err
	}
	cl, err := newClient(c, sc)
	if err != nil {
		return nil, err
	}
	cg, err := sarama.NewConsumerGroupFromClient(o.Group, cl)
	if err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("consumer group %s: %w", o.Group, err)
	}
	pc, err := SaramaProducerConfig(c, ProducerOptions{})
	if err != nil {
		_ = cg.Close()
		return nil, err
	}
	dlq, err := sarama.NewSyncProducer(c.Brokers, pc)
	if err != nil {
		_ = cg.Close()
		return nil, fmt.Errorf("dead-letter producer: %w", err)
	}
	return &Group{opts: o, log: log.With(zap.String("group", o.Group)), handler: h, group: cg, client: cl, dlq: dlq, paused: map[string]map[int32]int{}}, nil
}

// groupSarama is the sarama configuration of a group's client; o has its
// defaults set.
func groupSarama(c Config, o GroupOptions) (*sarama.Config, error) {
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	sc.Consumer.Offsets.AutoCommit.Enable = false
	sc.Consumer.Return.Errors = true
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	sc.Consumer.Group.Rebalance.Timeout = o.RebalanceTimeout
	// The coordinator answers a JoinGroup only when the rebalance completes,
	// up to RebalanceTimeout after it began; sarama waits Net.ReadTimeout for
	// any answer. Shorter, and the member drops its connection mid-join and
	// joins again, which kfake takes as a reason to restart its rebalance
	// deadline: with a 60 s rebalance timeout, sarama's 30 s read timeout
	// and a dead member that never rejoined, groups stayed in
	// PreparingRebalance for minutes under repeated SIGKILLs (issue 13,
	// IBM/sarama#2820, docs/consumer-groups.md). Java's consumer waits
	// rebalance timeout + 5 s.
	sc.Net.ReadTimeout = max(sc.Net.ReadTimeout, o.RebalanceTimeout+joinLapse)
	if o.SessionTimeout > 0 {
		sc.Consumer.Group.Session.Timeout = o.SessionTimeout
		sc.Consumer.Group.Heartbeat.Interval = o.SessionTimeout / 3
	}
	// The start position (KAFKA_START) and the fetch sizes
	// (KAFKA_FETCH_*_BYTES) come from c.Sarama; see DefaultFetchPartitionMaxBytes.
	sc.Consumer.MaxWaitTime = o.FetchMaxWait
	sc.ChannelBufferSize = 256
	sc.Consumer.Group.InstanceId = o.InstanceID
	if o.dialer != nil {
		sc.Net.Proxy.Enable = true
		sc.Net.Proxy.Dialer = o.dialer
	}
	return sc, nil
}

// Client is the group's client (offsets, metadata, readiness).
func (g *Group) Client() sarama.Client { return g.client }

// Run consumes until ctx ends, then lets in-flight batches finish (up to
// CloseTimeout), commits them and leaves the group, a static member too. It
// fails early if another member takes the group's InstanceID.
func (g *Group) Run(ctx context.Context) error {
	hard, cancelHard := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelHard()
	stopTimer := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(g.opts.CloseTimeout, cancelHard)
		context.AfterFunc(hard, func() { t.Stop() })
	})
	defer stopTimer()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for err := range g.group.Errors() {
			g.log.Warn("consumer group error", zap.Error(err))
		}
	}()
	h := &claimHandler{g: g, hard: hard}
	wait := backoff.New(g.opts.RetryBackoff, g.opts.MaxBackoff)
	var runErr error
	for ctx.Err() == nil {
		err := g.group.Consume(ctx, g.opts.Topics, h)
		if errors.Is(err, sarama.ErrClosedConsumerGroup) {
			break
		}
		if errors.Is(err, sarama.ErrFencedInstancedId) {
			// Another live member joined under our instance id: one of the
			// two is misconfigured, and retrying would only fence it back.
			runErr = fmt.Errorf("consumer group %s: another member joined with instance id %q (each replica needs its own): %w",
				g.opts.Group, g.opts.InstanceID, err)
			break
		}
		if err != nil && ctx.Err() == nil {
			g.log.Warn("consume session ended", zap.Error(err), zap.Duration("retry_within", wait.Ceiling()))
			if !wait.Wait(ctx) {
				break
			}
			continue
		}
		wait.Reset()
	}
	if err := g.group.Close(); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
		runErr = errors.Join(runErr, fmt.Errorf("close group %s: %w", g.opts.Group, err))
	}
	if g.opts.InstanceID != "" && runErr == nil {
		if err := g.leaveStatic(); err != nil {
			g.log.Warn("static member could not leave the group; its partitions move when its session expires",
				zap.String("instance_id", g.opts.InstanceID), zap.Duration("session_timeout", g.client.Config().Consumer.Group.Session.Timeout), zap.Error(err))
		}
	}
	wg.Wait()
	if err := g.dlq.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("close dead-letter producer: %w", err))
	}
	if err := g.client.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
		runErr = errors.Join(runErr, err)
	}
	return runErr
}

// leaveStatic takes a static member out of the group at shutdown. sarama
// leaves only dynamic members (a static one is expected back under its id,
// KIP-345), so without this the partitions of a replica stopped on purpose
// (a scale-down, a rollout to new pod names) would wait out its session.
// By the time it runs, the session's Cleanup has committed the last offsets.
func (g *Group) leaveStatic() error {
	coord, err := g.client.Coordinator(g.opts.Group)
	if err != nil {
		return err
	}
	reason := "replica shut down"
	resp, err := coord.LeaveGroup(&sarama.LeaveGroupRequest{
		Version: 5, GroupId: g.opts.Group,
		Members: []sarama.MemberIdentity{{GroupInstanceId: &g.opts.InstanceID, Reason: &reason}},
	})
	if err != nil {
		return err
	}
	if !errors.Is(resp.Err, sarama.ErrNoError) {
		return resp.Err
	}
	for _, m := range resp.Members {
		// Unknown: already gone (its session expired, or it was never in).
		if !errors.Is(m.Err, sarama.ErrNoError) && !errors.Is(m.Err, sarama.ErrUnknownMemberId) {
			return m.Err
		}
	}
	g.log.Info("static member left the group", zap.String("instance_id", g.opts.InstanceID))
	return nil
}

func (g *Group) pause(topic string, p int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused[topic] == nil {
		g.paused[topic] = map[int32]int{}
	}
	g.paused[topic][p]++
	if g.paused[topic][p] == 1 {
		g.group.Pause(map[string][]int32{topic: {p}})
		g.opts.Metrics.Paused.WithLabelValues(g.opts.Group, topic).Inc()
	}
}

func (g *Group) resume(topic string, p int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.paused[topic][p]--
	if g.paused[topic][p] == 0 {
		delete(g.paused[topic], p)
		g.group.Resume(map[string][]int32{topic: {p}})
		g.opts.Metrics.Paused.WithLabelValues(g.opts.Group, topic).Dec()
	}
}

// claimHandler serves one session at a time (sarama runs them in turn), so
// Setup can give each session its own committer.
type claimHandler struct {
	g    *Group
	hard context.Context

	dirty       chan struct{} // a batch was marked; buffered 1, so marks coalesce
	stopCommits chan struct{}
	commitsDone chan struct{}
}

func (h *claimHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.g.log.Info("partitions assigned", zap.Any("claims", s.Claims()), zap.Int32("generation", s.GenerationID()))
	h.dirty = make(chan struct{}, 1)
	h.stopCommits = make(chan struct{})
	h.commitsDone = make(chan struct{})
	go h.commitLoop(s)
	return nil
}

// commitLoop commits marked offsets as soon as there are any, off the
// partitions' path: a synchronous OffsetCommit queues behind the long-poll
// fetches on the coordinator's connection and serialises every partition of
// the member, which put tens of milliseconds into each batch. While one
// commit is in flight, later marks gather and the next commit carries them
// all. Only offsets of handled batches are ever marked, so this commits
// nothing early; a crash replays what was marked but not yet committed, as
// it replays a batch killed between its effect and its commit.
func (h *claimHandler) commitLoop(s sarama.ConsumerGroupSession) {
	defer close(h.commitsDone)
	for {
		select {
		case <-h.dirty:
			s.Commit()
		case <-h.stopCommits:
			return
		}
	}
}

// Cleanup runs after every claim of the session has returned: it stops the
// committer and commits the last marks before the partitions can move to
// another member, so a rebalance or shutdown replays nothing handled.
func (h *claimHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	close(h.stopCommits)
	<-h.commitsDone
	s.Commit()
	h.g.log.Info("partitions released", zap.Any("claims", s.Claims()))
	return nil
}

func (h *claimHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	g := h.g
	m := g.opts.Metrics
	part := strconv.Itoa(int(claim.Partition()))
	lag := m.Lag.WithLabelValues(g.opts.Group, claim.Topic(), part)
	defer m.Lag.DeleteLabelValues(g.opts.Group, claim.Topic(), part)
	for {
		recs, open := collect(sess.Context(), claim.Messages(), g.opts.MaxBatch, g.opts.Linger)
		if len(recs) == 0 {
			return nil
		}
		b := &Batch{Topic: claim.Topic(), Partition: claim.Partition(), Records: recs, stopping: sess.Context().Done(), runner: g}
		// Lag counts from the batch's first record until it is committed, so
		// the gauge keeps growing while a failing batch is retried.
		lag.Set(float64(max(0, claim.HighWaterMarkOffset()-recs[0].Offset)))
		if !h.process(sess, b, func() { lag.Set(float64(max(0, claim.HighWaterMarkOffset()-recs[0].Offset))) }) {
			return nil
		}
		lag.Set(float64(max(0, claim.HighWaterMarkOffset()-b.Last().Offset-1)))
		if !open {
			return nil
		}
	}
}

// process runs the handler until it succeeds, dead-letters the rejects and
// commits. It reports false when the session ended before the batch was done.
func (h *claimHandler) process(sess sarama.ConsumerGroupSession, b *Batch, onRetry func()) bool {
	g := h.g
	m := g.opts.Metrics
	wait := backoff.New(g.opts.RetryBackoff, g.opts.MaxBackoff)
	for attempt := 1; ; attempt++ {
		b.rejected = b.rejected[:0]
		start := time.Now()
		err := g.handler.Handle(h.hard, b)
		m.HandleSeconds.WithLabelValues(g.opts.Group, b.Topic).Observe(time.Since(start).Seconds())
		if err == nil {
			err = h.deadLetter(b)
		}
		if err == nil {
			break
		}
		if errors.Is(err, ErrInterrupted) || sess.Context().Err() != nil || h.hard.Err() != nil {
			g.log.Info("batch left uncommitted", zap.String("topic", b.Topic), zap.Int32("partition", b.Partition),
				zap.Int64("first_offset", b.Records[0].Offset), zap.NamedError("cause", err))
			return false
		}
		m.Retries.WithLabelValues(g.opts.Group, b.Topic).Inc()
		onRetry()
		g.log.Warn("batch failed; pausing partition and retrying", zap.String("topic", b.Topic), zap.Int32("partition", b.Partition),
			zap.Int64("first_offset", b.Records[0].Offset), zap.Int("attempt", attempt), zap.Duration("retry_within", wait.Ceiling()), zap.Error(err))
		if b.Wait(sess.Context(), wait.Next()) != nil {
			return false
		}
	}
	sess.MarkOffset(b.Topic, b.Partition, b.Last().Offset+1, "")
	select {
	case h.dirty <- struct{}{}:
	default: // a commit is already due; it will carry this mark
	}
	m.Records.WithLabelValues(g.opts.Group, b.Topic).Add(float64(len(b.Records)))
	return true
}

// Header names on dead letters: the contract's (topics/events), under the
// names this package's callers already use.
const (
	HeaderDLQTopic     = events.HeaderDLQTopic
	HeaderDLQPartition = events.HeaderDLQPartition
	HeaderDLQOffset    = events.HeaderDLQOffset
	HeaderDLQGroup     = events.HeaderDLQGroup
	HeaderDLQReason    = events.HeaderDLQReason
)

func (h *claimHandler) deadLetter(b *Batch) error {
	if len(b.rejected) == 0 {
		return nil
	}
	g := h.g
	msgs := make([]*sarama.ProducerMessage, 0, len(b.rejected))
	for _, r := range b.rejected {
		m := &sarama.ProducerMessage{
			Topic:   g.opts.DeadLetterTopic,
			Key:     sarama.ByteEncoder(r.msg.Key),
			Value:   sarama.ByteEncoder(r.msg.Value),
			Headers: make([]sarama.RecordHeader, 0, len(r.msg.Headers)+5),
		}
		for _, rh := range r.msg.Headers {
			m.Headers = append(m.Headers, *rh)
		}
		// Set, not append: a record dead-lettered again names its latest
		// source and reason once.
		h := ProducerHeaders(m)
		h.Set(HeaderDLQTopic, r.msg.Topic)
		h.Set(HeaderDLQPartition, strconv.Itoa(int(r.msg.Partition)))
		h.Set(HeaderDLQOffset, strconv.FormatInt(r.msg.Offset, 10))
		h.Set(HeaderDLQGroup, g.opts.Group)
		h.Set(HeaderDLQReason, r.reason)
		msgs = append(msgs, m)
		g.log.Warn("record dead-lettered", zap.String("topic", r.msg.Topic), zap.Int32("partition", r.msg.Partition),
			zap.Int64("offset", r.msg.Offset), zap.String("reason", r.reason))
	}
	if err := g.dlq.SendMessages(msgs); err != nil {
		return fmt.Errorf("produce %d dead letters: %w", len(msgs), err)
	}
	g.opts.Metrics.DeadLetters.WithLabelValues(g.opts.Group, b.Topic).Add(float64(len(msgs)))
	return nil
}

// collect blocks for a first record, then takes what arrives within linger, up
// to max. open is false once the claim's channel has closed.
func collect(ctx context.Context, in <-chan *sarama.ConsumerMessage, max int, linger time.Duration) (recs []*sarama.ConsumerMessage, open bool) {
	select {
	case m, ok := <-in:
		if !ok {
			return nil, false
		}
		recs = append(recs, m)
	case <-ctx.Done():
		return nil, true
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	for len(recs) < max {
		select {
		case m, ok := <-in:
			if !ok {
				return recs, false
			}
			recs = append(recs, m)
		case <-t.C:
			return recs, true
		case <-ctx.Done():
			return recs, true
		}
	}
	return recs, true
}
