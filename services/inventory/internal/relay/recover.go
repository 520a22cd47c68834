package relay

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"backinstock/services/inventory/internal/store"
	"backinstock/shared/kafka"
)

// HeaderOutbox names the outbox entry a record came from:
// "<outbox id>/<shard>/<entry id>/<s|r>". The outbox id is a random value
// stored once per shard in Redis, so two deployments sharing a cluster never
// mistake each other's records.
const HeaderOutbox = "inv-outbox"

// outboxID returns the shard's outbox id, creating it on first use.
func outboxID(ctx context.Context, rdb redis.UniversalClient, shard int) (string, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	key := store.OutboxIDKey(shard)
	if err := rdb.SetNX(ctx, key, hex.EncodeToString(b[:]), 0).Err(); err != nil {
		return "", fmt.Errorf("outbox id: %w", err)
	}
	id, err := rdb.Get(ctx, key).Result()
	if err != nil {
		return "", fmt.Errorf("outbox id: %w", err)
	}
	return id, nil
}

// findPublished closes the one window the outbox has: records acknowledged
// by Kafka whose entries were not trimmed yet when the process died (or
// whose acknowledgement was lost with a failed producer). Before such a
// batch is sent again, it reads the partitions the batch's records map to,
// from the first record at or after the batch's oldest entry time to the end,
// and marks the records it finds as acknowledged. Only the lease holder
// publishes a shard, so nothing of this shard is appended meanwhile.
func findPublished(ctx context.Context, cl sarama.Client, recs []pendingRecord, acked map[string]bool) error {
	type tp struct {
		topic string
		part  int32
	}
	from := map[tp]int64{} // earliest entry time (ms) per partition
	want := map[string]bool{}
	for _, rc := range recs {
		parts, err := cl.Partitions(rc.msg.Topic)
		if err != nil {
			return fmt.Errorf("partitions of %s: %w", rc.msg.Topic, err)
		}
		p, err := kafka.NewPartitioner(rc.msg.Topic).Partition(rc.msg, int32(len(parts)))
		if err != nil {
			return fmt.Errorf("partition of %s: %w", rc.msg.Topic, err)
		}
		k := tp{rc.msg.Topic, p}
		ms := rc.at.UnixMilli()
		if cur, ok := from[k]; !ok || ms < cur {
			from[k] = ms
		}
		want[rc.header] = true
	}
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return fmt.Errorf("recovery consumer: %w", err)
	}
	defer cons.Close()
	// Partitions are looked at concurrently: each costs at least one fetch
	// round trip, and a batch touches many.
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for k, ms := range from {
		wg.Go(func() {
			found := map[string]bool{}
			err := scanFrom(ctx, cl, cons, k.topic, k.part, ms, want, found)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			for h := range found {
				acked[h] = true
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// scanFrom reads one partition from the first record at or after ms to its end.
func scanFrom(ctx context.Context, cl sarama.Client, cons sarama.Consumer, topic string, part int32, ms int64, want, found map[string]bool) error {
	start, err := cl.GetOffset(topic, part, ms)
	if err != nil {
		return fmt.Errorf("offset of %s/%d at %d: %w", topic, part, ms, err)
	}
	end, err := cl.GetOffset(topic, part, sarama.OffsetNewest)
	if err != nil {
		return fmt.Errorf("end of %s/%d: %w", topic, part, err)
	}
	if start < 0 || start >= end {
		return nil // nothing at or after the batch's time
	}
	return scan(ctx, cons, topic, part, start, end, want, found)
}

func scan(ctx context.Context, cons sarama.Consumer, topic string, part int32, start, end int64, want, acked map[string]bool) error {
	pc, err := cons.ConsumePartition(topic, part, start)
	if err != nil {
		return fmt.Errorf("read %s/%d: %w", topic, part, err)
	}
	defer pc.AsyncClose()
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case m, ok := <-pc.Messages():
			if !ok {
				return fmt.Errorf("read %s/%d: consumer closed", topic, part)
			}
			if h, ok := kafka.ConsumerHeaders(m).Lookup(HeaderOutbox); ok && want[h] {
				acked[h] = true
			}
			if m.Offset+1 >= end {
				return nil
			}
		case e := <-pc.Errors():
			return fmt.Errorf("read %s/%d: %w", topic, part, e)
		case <-timeout.C:
			return fmt.Errorf("read %s/%d: no progress towards offset %d", topic, part, end)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
