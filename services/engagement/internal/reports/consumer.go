package reports

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"backinstock/services/engagement/internal/aggkeys"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// Topics are the topics the report consumer reads; the zero value is the
// catalogue's (tests name their own).
type Topics struct {
	DeliveryStatus, Clicks, Restock, Stock, WishlistChanges string
}

// WithDefaults fills the empty names with the catalogue's.
func (t Topics) WithDefaults() Topics {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&t.DeliveryStatus, catalog.DeliveryStatus)
	def(&t.Clicks, catalog.Clicks)
	def(&t.Restock, catalog.Restock)
	def(&t.Stock, catalog.Stock)
	def(&t.WishlistChanges, catalog.WishlistChanges)
	return t
}

// List is the topics in the order a rebuild reads them: the restocks
// before the deliveries (a delivery's lag is measured from its restock).
func (t Topics) List() []string {
	return []string{t.Restock, t.Stock, t.WishlistChanges, t.DeliveryStatus, t.Clicks}
}

// Consumer turns records of the Topics into report aggregates: a
// kafka.Handler for the live group, and Apply for the rebuild.
type Consumer struct {
	st     *Store
	topics Topics
}

// NewConsumer writes into st what it reads from topics.
func NewConsumer(st *Store, topics Topics) *Consumer {
	return &Consumer{st: st, topics: topics.WithDefaults()}
}

// Handle applies a batch; records that do not decode go to the dead-letter
// topic. It returns nil only once every record's effect is in Redis, and
// applying a batch again changes nothing (see the package comment).
func (c *Consumer) Handle(ctx context.Context, b *kafka.Batch) error {
	bad, err := c.Apply(ctx, b.Topic, b.Records)
	for _, r := range bad {
		b.Reject(r.Msg, r.Err)
	}
	return err
}

// Rejected is a record that could not be applied, and why.
type Rejected struct {
	Msg *sarama.ConsumerMessage
	Err error
}

// step is one record's writes: the index members it adds (SADD is
// idempotent, so they go first, outside the script: an index member whose
// hash is missing reads as zeros) and its script.
type step struct {
	index  []string
	script *redis.Script
	keys   []string
	args   []any
	// soldOut, for a stock record, is the member of aggkeys.SoldOut the
	// script's answer adds or removes.
	soldOut string
}

// Apply applies records of topic in order, in one pipeline; it returns
// the records it could not decode (not applied).
func (c *Consumer) Apply(ctx context.Context, topic string, recs []*sarama.ConsumerMessage) ([]Rejected, error) {
	var (
		steps []step
		bad   []Rejected
	)
	for _, m := range recs {
		st, ok, err := c.plan(topic, m)
		if err != nil {
			bad = append(bad, Rejected{Msg: m, Err: err})
			continue
		}
		if ok {
			steps = append(steps, st)
		}
	}
	if len(steps) == 0 {
		return bad, nil
	}
	results, err := c.st.run(ctx, steps)
	if err != nil {
		return bad, err
	}
	return bad, c.st.soldOut(ctx, steps, results)
}

// plan decodes one record into its step; ok is false for a record with
// nothing to count (a wishlist preferences record).
func (c *Consumer) plan(topic string, m *sarama.ConsumerMessage) (step, bool, error) {
	s := c.st
	switch topic {
	case c.topics.DeliveryStatus:
		d, err := events.DecodeDeliveryStatus(m.Value)
		if err != nil {
			return step{}, false, err
		}
		kind, counter := stateKind(d.Status)
		day, hh := aggkeys.Day(d.At), d.At.UTC().Format("15")
		return step{
			index:  []string{aggkeys.IndexMember(d.SKU, d.Region, d.Channel)},
			script: deliveryScript,
			keys: []string{aggkeys.NotificationState(d.SKU, d.NotificationID), aggkeys.Report(d.SKU, d.Region, d.Channel, day),
				aggkeys.RestockTimes(d.SKU, d.Region), aggkeys.LagPending(d.SKU, d.Region)},
			args: []any{kind, ms(d.At), hh, s.markerTTL.Milliseconds(), s.retention.Milliseconds(),
				aggkeys.Notified, counter, aggkeys.LagCount(hh), aggkeys.LagSumMS(hh), aggkeys.LagMaxMS(hh), aggkeys.LagUnmatched, d.NotificationID},
		}, true, nil
	case c.topics.Clicks:
		e, err := events.DecodeClickEvent(m.Value)
		if err != nil {
			return step{}, false, err
		}
		return step{
			index:  []string{aggkeys.IndexMember(e.SKU, e.Region, e.Channel)},
			script: clickScript,
			keys:   []string{aggkeys.ClickSeen(e.SKU, e.EventID), aggkeys.NotificationState(e.SKU, e.NotificationID), aggkeys.Report(e.SKU, e.Region, e.Channel, aggkeys.Day(e.At))},
			args:   []any{ms(e.At), s.markerTTL.Milliseconds(), s.retention.Milliseconds(), aggkeys.Clicks, aggkeys.UniqueClicks},
		}, true, nil
	case c.topics.Restock:
		r, err := events.DecodeRestockEvent(m.Value)
		if err != nil {
			return step{}, false, err
		}
		return step{
			script: restockScript,
			keys:   []string{aggkeys.RestockTimes(r.SKU, r.Region), aggkeys.Restocks(r.SKU, r.Region, aggkeys.Day(r.OccurredAt)), aggkeys.LagPending(r.SKU, r.Region)},
			args: []any{r.Episode, ms(r.OccurredAt), s.retention.Milliseconds(), aggkeys.RestocksField,
				aggkeys.LagCount(""), aggkeys.LagSumMS(""), aggkeys.LagMaxMS(""), aggkeys.LagUnmatched},
		}, true, nil
	case c.topics.Stock:
		sku, region, ok := events.ParseStockKey(string(m.Key))
		if !ok {
			return step{}, false, fmt.Errorf("stock record key %q is not <sku>|<region>", m.Key)
		}
		qty := ""
		at := "0"
		if m.Value != nil {
			l, err := events.DecodeStockLevel(m.Value)
			if err != nil {
				return step{}, false, err
			}
			if l.SKU != sku || l.Region != region {
				return step{}, false, fmt.Errorf("stock record key %q holds the level of %s|%s", m.Key, l.SKU, l.Region)
			}
			qty, at = fmt.Sprint(l.Quantity), ms(l.At)
		}
		return step{script: stockScript, keys: []string{aggkeys.Stock(sku)}, args: []any{region, qty, at}, soldOut: aggkeys.SoldOutMember(sku, region)}, true, nil
	case c.topics.WishlistChanges:
		return planWish(m)
	}
	return step{}, false, fmt.Errorf("topic %s is not one the reports read", topic)
}

// planWish plans one wishlist.changes.v1 record: an entry added or
// updated, or removed (a tombstone, or a legacy op "remove"); a user's
// preferences record counts nothing.
func planWish(m *sarama.ConsumerMessage) (step, bool, error) {
	key := string(m.Key)
	if _, ok := events.PreferencesUser(key); ok {
		return step{}, false, nil
	}
	user, sku, ok := strings.Cut(key, "|")
	if !ok || !events.ValidID(user) || !events.ValidID(sku) {
		return step{}, false, fmt.Errorf("wishlist record key %q is not <user_id>|<sku>", key)
	}
	value := ""
	var index []string
	if m.Value != nil {
		w, err := events.DecodeWishlistChange(m.Value)
		if err != nil {
			return step{}, false, err
		}
		if w.UserID != user || w.SKU != sku {
			return step{}, false, fmt.Errorf("wishlist record key %q holds the entry of %s|%s", key, w.UserID, w.SKU)
		}
		if w.Op != events.OpRemove {
			chans := slices.Clone(w.Channels)
			slices.Sort(chans) // one spelling per set of channels: the same entry read twice is no change
			value = aggkeys.WishValue(w.Region, chans)
			for _, ch := range chans {
				index = append(index, aggkeys.IndexMember(sku, w.Region, ch))
			}
		}
	}
	return step{index: index, script: wishScript, keys: []string{aggkeys.Wishes(sku), aggkeys.Waiting(sku)}, args: []any{user, value}}, true, nil
}

// run sends the steps in one pipeline, in order; when Redis has lost the
// scripts (a restart), it loads them and sends the steps again, which
// changes nothing that already happened.
func (s *Store) run(ctx context.Context, steps []step) ([]int64, error) {
	for attempt := 0; ; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(steps))
		for i, st := range steps {
			for _, m := range st.index {
				pipe.SAdd(ctx, aggkeys.ReportIndex, m)
			}
			cmds[i] = st.script.EvalSha(ctx, pipe, st.keys, st.args...)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && attempt == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
			if err := s.loadScripts(ctx); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("apply %d report records: %w", len(steps), err)
		}
		out := make([]int64, len(cmds))
		for i, c := range cmds {
			out[i], _ = c.Int64()
		}
		return out, nil
	}
}

func (s *Store) loadScripts(ctx context.Context) error {
	var errs []error
	for _, sc := range scripts {
		// A cluster client loads a script on every master.
		errs = append(errs, sc.Load(ctx, s.rdb).Err())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("load report scripts: %w", err)
	}
	return nil
}

// soldOut brings aggkeys.SoldOut in line with the stock steps' answers,
// in record order. It runs after the scripts, so a crash in between is
// mended when the batch comes again (the scripts answer the same).
func (s *Store) soldOut(ctx context.Context, steps []step, results []int64) error {
	pipe := s.rdb.Pipeline()
	n := 0
	for i, st := range steps {
		if st.soldOut == "" {
			continue
		}
		n++
		if results[i] == 1 {
			pipe.SAdd(ctx, aggkeys.SoldOut, st.soldOut)
		} else {
			pipe.SRem(ctx, aggkeys.SoldOut, st.soldOut)
		}
	}
	if n == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("update the sold-out set: %w", err)
	}
	return nil
}
