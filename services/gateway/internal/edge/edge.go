// Package edge reads one channel of a region's JetStream edge stream for
// the gateway: one durable pull consumer per (region, channel), named and
// filtered by the contract in topics/edge, shared by every gateway replica
// of the region (the server spreads the messages over whoever pulls; no
// partitions to assign). Acks are explicit and sent only once the handler
// has decided; MaxAckPending bounds what is out at once, over all replicas,
// so a slow or failing provider leaves the backlog in the stream, not in
// memory; a slow send is kept alive with in-progress acks; MaxDeliver and
// the BackOff list bound the redeliveries (their schedule: package retry).
package edge

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"backinstock/services/gateway/internal/retry"
	"backinstock/shared/config"
	"backinstock/shared/pause"
	topicsedge "backinstock/topics/edge"
)

// Delivery is one edge message as the handler sees it.
type Delivery struct {
	Data    []byte
	Subject string
	// Attempt is JetStream's delivery count of the message, from 1.
	Attempt int
	// Traceparent is the message's W3C trace context ("" if none).
	Traceparent string
}

// Action is what becomes of a message once handled.
type Action int

const (
	// Ack: done (delivered, or failed for good with its receipt written).
	Ack Action = iota
	// Retry: hand it back to be delivered again after Delay (0: now, to
	// any replica).
	Retry
	// Term: it can never be handled (not even a receipt can say so); the
	// server drops it.
	Term
	// Abandon: no answer at all; the server redelivers after the ack wait,
	// as it does for a gateway that died holding the message (the crash
	// tests' in-process stand-in for SIGKILL).
	Abandon
)

// Outcome is the handler's decision about one message.
type Outcome struct {
	Action Action
	Delay  time.Duration
	// Reason is logged with a Term.
	Reason string
}

// Handler handles one delivery. ctx ends only when the gateway's stop
// timeout runs out: a handler finishes what it started.
type Handler interface {
	Handle(ctx context.Context, d Delivery) Outcome
}

// Options configure a Consumer.
type Options struct {
	Region, Channel string
	// Policy sets the ack wait (and the in-progress interval: a third of
	// it), the back-off list and MaxDeliver.
	Policy retry.Policy
	// MaxAckPending bounds the messages out (being sent or waiting for a
	// retry) over all replicas: the backpressure bound.
	MaxAckPending int
	// Workers is how many messages this replica handles at once.
	Workers int
	// StopTimeout bounds how long a stop waits for the handlers.
	StopTimeout time.Duration
	// StatsInterval is how often the consumer's numbers are read for the
	// metrics.
	StatsInterval time.Duration
	Metrics       *Metrics
	Log           *zap.Logger
	// Gate is the operator's pause of the channel (shared/pause); nil:
	// never paused.
	Gate *pause.Gate
}

// setDefaults fills the zero fields (the app has validated the rest).
func (o *Options) setDefaults() {
	config.Default(&o.Workers, 1)
	config.Default(&o.MaxAckPending, 64*o.Workers)
	config.Default(&o.StopTimeout, 30*time.Second)
	config.Default(&o.StatsInterval, 5*time.Second)
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, o.Region)
	}
}

// ConsumerConfig is the durable consumer of channel in region.
func ConsumerConfig(region, channel string, p retry.Policy, maxAckPending int) jetstream.ConsumerConfig {
	bo := p.BackOff()
	return jetstream.ConsumerConfig{
		Durable:       topicsedge.GatewayConsumer(channel),
		Description:   "backinstock gateway: " + channel + " deliveries of " + region,
		FilterSubject: topicsedge.ChannelFilter(region, channel),
		// Everything the stream still holds: a gateway deployed after the
		// notifier started still delivers what was waiting for it.
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		// The server takes the ack wait from BackOff[0]; say so here too.
		AckWait:       bo[0],
		BackOff:       bo,
		MaxDeliver:    p.MaxAttempts,
		MaxAckPending: maxAckPending,
		ReplayPolicy:  jetstream.ReplayInstantPolicy,
	}
}

// Consumer pulls one channel's messages and runs them through a Handler.
type Consumer struct {
	js jetstream.JetStream
	h  Handler
	o  Options

	mu   sync.Mutex
	cons jetstream.Consumer
}

// NewConsumer builds a consumer; Run creates the durable and pulls.
func NewConsumer(js jetstream.JetStream, h Handler, o Options) *Consumer {
	o.setDefaults()
	return &Consumer{js: js, h: h, o: o}
}

// Ready reports whether the durable consumer exists (for /readyz).
func (c *Consumer) Ready() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cons == nil {
		return fmt.Errorf("consumer %s on %s not created yet", topicsedge.GatewayConsumer(c.o.Channel), topicsedge.StreamName(c.o.Region, c.o.Channel))
	}
	return nil
}

// ensure creates or updates the durable consumer, waiting for the stream
// (the notifier creates it) and retrying JetStream's transient errors until
// ctx ends.
func (c *Consumer) ensure(ctx context.Context) (jetstream.Consumer, error) {
	stream := topicsedge.StreamName(c.o.Region, c.o.Channel)
	cfg := ConsumerConfig(c.o.Region, c.o.Channel, c.o.Policy, c.o.MaxAckPending)
	backoff := 100 * time.Millisecond
	for warned := false; ; {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := c.js.CreateOrUpdateConsumer(actx, stream, cfg)
		cancel()
		if err == nil {
			return cons, nil
		}
		if !warned || !errors.Is(err, jetstream.ErrStreamNotFound) {
			c.o.Log.Warn("edge consumer not created yet; retrying", zap.String("stream", stream), zap.String("consumer", cfg.Durable), zap.Error(err))
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("create consumer %s on %s: %w", cfg.Durable, stream, err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// Run pulls and handles messages until ctx ends, then stops pulling, hands
// back what it had pulled but not started, lets the handlers finish and ack
// what they were doing (up to StopTimeout), and returns. While the
// channel's Gate is paused it pulls nothing: the sends in progress finish,
// what it had pulled but not sent is held (kept alive with in-progress
// acks, so the pause spends none of its deliveries), and the rest waits
// in the stream.
func (c *Consumer) Run(ctx context.Context) error {
	cons, err := c.ensure(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	c.mu.Lock()
	c.cons = cons
	c.mu.Unlock()
	log := c.o.Log.With(zap.String("consumer", topicsedge.GatewayConsumer(c.o.Channel)))

	// The handlers' context outlives ctx by the stop timeout.
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	jobs := make(chan jetstream.Msg)
	var workers sync.WaitGroup
	for range c.o.Workers {
		workers.Go(func() {
			for msg := range jobs {
				c.handle(ctx, work, msg, log)
			}
		})
	}
	var aux sync.WaitGroup
	aux.Go(func() { c.stats(ctx, cons) })

	var runErr error
	var held []jetstream.Msg // pulled, not yet handed to a worker
	for ctx.Err() == nil {
		if c.o.Gate.IsPaused() {
			log.Info("channel paused: pulling nothing", zap.Int("held", len(held)))
			held = c.holdPaused(ctx, held)
			if ctx.Err() == nil {
				log.Info("channel resumed: pulling again", zap.Int("held", len(held)))
			}
			continue
		}
		if held = c.dispatch(ctx, jobs, held, log); len(held) > 0 {
			continue // paused meanwhile
		}
		if ctx.Err() != nil {
			break
		}
		var closed bool
		held, closed, err = c.pull(ctx, cons, jobs, log)
		if err != nil {
			runErr = err
			break
		}
		if closed {
			runErr = fmt.Errorf("pull from %s: the server closed the consumer", topicsedge.GatewayConsumer(c.o.Channel))
			break
		}
	}
	for _, msg := range held {
		c.nak(msg, 0, log) // pulled but not started: another replica takes it now
	}
	close(jobs)
	done := make(chan struct{})
	go func() { workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(c.o.StopTimeout):
		log.Warn("stop timeout: abandoning the sends still running", zap.Duration("timeout", c.o.StopTimeout))
		cancelWork()
		<-done
	}
	aux.Wait()
	return runErr
}

// pull runs one pull iterator until ctx ends, the channel is paused (it
// answers what it had pulled and not handed out, to be held) or the
// iterator closes by itself (closed).
func (c *Consumer) pull(ctx context.Context, cons jetstream.Consumer, jobs chan<- jetstream.Msg, log *zap.Logger) (held []jetstream.Msg, closed bool, err error) {
	// A client-side buffer of one message per worker: more would sit with
	// their ack wait running while the workers are busy.
	iter, err := cons.Messages(jetstream.PullMaxMessages(c.o.Workers))
	if err != nil {
		return nil, false, fmt.Errorf("pull from %s: %w", topicsedge.GatewayConsumer(c.o.Channel), err)
	}
	var paused atomic.Bool
	ended := make(chan struct{})
	var stopper sync.WaitGroup
	stopper.Go(func() {
		select {
		case <-ctx.Done():
		case <-c.o.Gate.Paused():
			paused.Store(true)
		case <-ended: // closed by itself
		}
		iter.Drain() // Next hands out what is buffered, then ErrMsgIteratorClosed
	})
	defer func() { close(ended); stopper.Wait() }()

	for {
		msg, err := iter.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			break
		}
		if err != nil {
			// A missed heartbeat (NATS away): the iterator keeps pulling
			// once the connection is back.
			if ctx.Err() == nil {
				log.Warn("pull", zap.Error(err))
			}
			continue
		}
		switch {
		case ctx.Err() != nil:
			c.nak(msg, 0, log) // pulled but not started: another replica takes it now
		case len(held) > 0 || paused.Load():
			held = append(held, msg)
		default:
			held = c.dispatch(ctx, jobs, []jetstream.Msg{msg}, log)
		}
	}
	return held, ctx.Err() == nil && !paused.Load(), nil
}

// dispatch hands msgs to the workers in order, keeping those still
// waiting alive; it answers the ones left when the channel is paused (at
// stop it hands them back to the stream).
func (c *Consumer) dispatch(ctx context.Context, jobs chan<- jetstream.Msg, msgs []jetstream.Msg, log *zap.Logger) []jetstream.Msg {
	if len(msgs) == 0 {
		return nil
	}
	beat := time.NewTicker(c.o.Policy.AckWait / 3)
	defer beat.Stop()
	for len(msgs) > 0 {
		select {
		case jobs <- msgs[0]:
			msgs = msgs[1:]
		case <-ctx.Done():
			for _, msg := range msgs {
				c.nak(msg, 0, log)
			}
			return nil
		case <-c.o.Gate.Paused():
			return msgs
		case <-beat.C:
			c.keepAlive(msgs, log)
		}
	}
	return nil
}

// holdPaused keeps held alive until the channel is resumed (answering
// them) or ctx ends (handing them back to the stream).
func (c *Consumer) holdPaused(ctx context.Context, held []jetstream.Msg) []jetstream.Msg {
	beat := time.NewTicker(c.o.Policy.AckWait / 3)
	defer beat.Stop()
	for {
		select {
		case <-c.o.Gate.Resumed():
			return held
		case <-ctx.Done():
			return held // Run hands them back
		case <-beat.C:
			c.keepAlive(held, c.o.Log)
		}
	}
}

func (c *Consumer) keepAlive(msgs []jetstream.Msg, log *zap.Logger) {
	for _, msg := range msgs {
		if err := msg.InProgress(); err != nil {
			log.Warn("in-progress ack", zap.String("subject", msg.Subject()), zap.Error(err))
		}
		c.o.Metrics.InProgress.WithLabelValues(c.o.Channel).Inc()
	}
}

// handle runs one message through the handler, keeping it alive with
// in-progress acks while it runs, and applies the outcome. A message of a
// channel paused before its send began waits for the resume; if the
// consumer stops first (stop ends), it goes back to the stream unsent.
func (c *Consumer) handle(stop, ctx context.Context, msg jetstream.Msg, log *zap.Logger) {
	m := c.o.Metrics
	m.InFlight.WithLabelValues(c.o.Channel).Inc()
	defer m.InFlight.WithLabelValues(c.o.Channel).Dec()
	d := Delivery{Data: msg.Data(), Subject: msg.Subject(), Attempt: 1, Traceparent: msg.Headers().Get("traceparent")}
	if meta, err := msg.Metadata(); err == nil {
		d.Attempt = int(meta.NumDelivered)
	}

	beatStop := make(chan struct{})
	var beat sync.WaitGroup
	beat.Go(func() {
		t := time.NewTicker(c.o.Policy.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-beatStop:
				return
			case <-t.C:
				if err := msg.InProgress(); err != nil {
					log.Warn("in-progress ack", zap.String("subject", d.Subject), zap.Error(err))
				}
				m.InProgress.WithLabelValues(c.o.Channel).Inc()
			}
		}
	})
	for c.o.Gate.IsPaused() {
		select {
		case <-c.o.Gate.Resumed():
		case <-stop.Done():
			close(beatStop)
			beat.Wait()
			c.nak(msg, 0, log)
			return
		}
	}
	out := c.h.Handle(ctx, d)
	close(beatStop)
	beat.Wait()

	switch out.Action {
	case Ack:
		// Wait for the server's confirmation: a lost ack would mean a
		// redelivery (harmless: the marker answers it, but it costs a
		// round of work).
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err := msg.DoubleAck(actx)
		cancel()
		if err != nil {
			log.Warn("ack", zap.String("subject", d.Subject), zap.Error(err))
			m.AckFailures.WithLabelValues(c.o.Channel).Inc()
		}
		m.Acks.WithLabelValues(c.o.Channel, "ack").Inc()
	case Retry:
		c.nak(msg, out.Delay, log)
	case Abandon:
		m.Acks.WithLabelValues(c.o.Channel, "none").Inc()
	case Term:
		log.Error("dropping an edge message that cannot be handled", zap.String("subject", d.Subject), zap.String("reason", out.Reason))
		if err := msg.TermWithReason(out.Reason); err != nil {
			log.Warn("term", zap.String("subject", d.Subject), zap.Error(err))
		}
		m.Acks.WithLabelValues(c.o.Channel, "term").Inc()
	}
}

func (c *Consumer) nak(msg jetstream.Msg, delay time.Duration, log *zap.Logger) {
	var err error
	if delay > 0 {
		err = msg.NakWithDelay(delay)
	} else {
		err = msg.Nak()
	}
	if err != nil {
		log.Warn("nak", zap.String("subject", msg.Subject()), zap.Error(err))
	}
	c.o.Metrics.Acks.WithLabelValues(c.o.Channel, "nak").Inc()
}

// stats copies the consumer's numbers into the gauges every
// StatsInterval.
func (c *Consumer) stats(ctx context.Context, cons jetstream.Consumer) {
	t := time.NewTicker(c.o.StatsInterval)
	defer t.Stop()
	for {
		ictx, cancel := context.WithTimeout(ctx, 2*time.Second)
		info, err := cons.Info(ictx)
		cancel()
		if err == nil {
			ch := c.o.Channel
			c.o.Metrics.Pending.WithLabelValues(ch).Set(float64(info.NumPending))
			c.o.Metrics.AckPending.WithLabelValues(ch).Set(float64(info.NumAckPending))
			c.o.Metrics.Redelivered.WithLabelValues(ch).Set(float64(info.NumRedelivered))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
