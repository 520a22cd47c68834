package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"
)

// ProducerOptions tune the producer; the zero value is the safe default.
type ProducerOptions struct {
	// Linger is how long a batch waits for more records (sarama Flush.Frequency).
	// A few milliseconds: 0 with a byte threshold waits for the bytes (FACTS.md).
	Linger time.Duration
}

// NewPartitioner is every producer's partitioner: keys map to partitions as
// the Java client and librdkafka's murmur2_random do, murmur2 of the key
// bytes (seed 0x9747b28c), toPositive(h) % partitions, a nil key to a random
// partition. sarama's default hashes with FNV-1a: a shop's Java or kcat
// producer writing the same key would land on another partition, and the
// key would lose its order and compaction. sarama v1.61 ships this hash
// (checked there against Kafka's own vectors), so it is not written here.
// Anything that computes where a key lives must ask this, not sarama.
func NewPartitioner(topic string) sarama.Partitioner { return sarama.NewMurmur2Partitioner(topic) }

// SaramaProducerConfig is the producer part of the configuration: idempotent,
// acks=all, bounded retries with backoff, one in-flight request per broker
// connection (what idempotence needs for ordering), keys partitioned by
// NewPartitioner.
func SaramaProducerConfig(c Config, o ProducerOptions) (*sarama.Config, error) {
	sc, err := c.Sarama()
	if err != nil {
		return nil, err
	}
	sc.Producer.Idempotent = true
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 10
	sc.Producer.Retry.Backoff = 250 * time.Millisecond
	sc.Producer.Return.Successes = true
	sc.Producer.Return.Errors = true
	sc.Producer.Partitioner = NewPartitioner
	if sc.Producer.Compression, err = c.codec(); err != nil {
		return nil, fmt.Errorf("KAFKA_COMPRESSION: %w", err)
	}
	sc.Producer.Flush.Frequency = 2 * time.Millisecond
	if o.Linger > 0 {
		sc.Producer.Flush.Frequency = o.Linger
	}
	sc.Producer.Flush.Bytes = 512 << 10
	sc.Producer.Flush.MaxMessages = 0
	sc.Producer.MaxMessageBytes = 1 << 20
	sc.ChannelBufferSize = 4096
	return sc, nil
}

// Producer is an idempotent asynchronous producer whose every record reports
// its acknowledgement to a callback, so callers can wait for exactly the
// records whose effect they must make durable before committing.
type Producer struct {
	ap   sarama.AsyncProducer
	cl   sarama.Client
	log  *zap.Logger
	wg   sync.WaitGroup
	once sync.Once
}

// Ack is called once per record, with nil when the record is acknowledged by
// all in-sync replicas, or the error that made the producer give it up.
type Ack func(msg *sarama.ProducerMessage, err error)

// NewProducer connects an idempotent producer.
func NewProducer(c Config, o ProducerOptions, log *zap.Logger) (*Producer, error) {
	sc, err := SaramaProducerConfig(c, o)
	if err != nil {
		return nil, err
	}
	cl, err := newClient(c, sc)
	if err != nil {
		return nil, err
	}
	ap, err := sarama.NewAsyncProducerFromClient(cl)
	if err != nil {
		_ = cl.Close()
		return nil, fmt.Errorf("kafka producer: %w", err)
	}
	p := &Producer{ap: ap, cl: cl, log: log}
	p.wg.Add(2)
	go p.successes()
	go p.errors()
	return p, nil
}

// Client is the producer's underlying client (metadata, readiness).
func (p *Producer) Client() sarama.Client { return p.cl }

type envelope struct {
	ack  Ack
	orig any
}

func (p *Producer) successes() {
	defer p.wg.Done()
	for m := range p.ap.Successes() {
		env := m.Metadata.(*envelope)
		m.Metadata = env.orig
		env.ack(m, nil)
	}
}

func (p *Producer) errors() {
	defer p.wg.Done()
	for e := range p.ap.Errors() {
		env := e.Msg.Metadata.(*envelope)
		e.Msg.Metadata = env.orig
		env.ack(e.Msg, e.Err)
	}
}

// Send enqueues msg; ack (may be nil) runs when it is acknowledged or given up. Send blocks
// while sarama's input buffer is full, which bounds memory when brokers are slow.
func (p *Producer) Send(ctx context.Context, msg *sarama.ProducerMessage, ack Ack) error {
	if ack == nil {
		ack = func(*sarama.ProducerMessage, error) {}
	}
	msg.Metadata = &envelope{ack: ack, orig: msg.Metadata}
	select {
	case p.ap.Input() <- msg:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// SendAll produces msgs and waits until every one is acknowledged; the error
// joins every record that was not, so the caller retries the whole set (the
// idempotent consumers downstream absorb the repeats).
func (p *Producer) SendAll(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
	)
	wg.Add(len(msgs))
	ack := func(m *sarama.ProducerMessage, err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("produce to %s: %w", m.Topic, err))
			mu.Unlock()
		}
		wg.Done()
	}
	for i, m := range msgs {
		if err := p.Send(ctx, m, ack); err != nil {
			for range msgs[i:] {
				wg.Done()
			}
			wg.Wait()
			return err
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		// One cause is enough to read; the count says how many.
		return fmt.Errorf("%d of %d records not acknowledged: %w", len(errs), len(msgs), errs[0])
	}
	return nil
}

// Close flushes what is buffered (waiting for the acks) and disconnects.
func (p *Producer) Close() error {
	var err error
	p.once.Do(func() {
		p.ap.AsyncClose()
		p.wg.Wait()
		err = p.cl.Close()
		if errors.Is(err, sarama.ErrClosedClient) {
			err = nil
		}
	})
	return err
}
