// Package changelog is the wishlist's durable log on wishlist.changes.v1
// (compacted, key "<user>|<sku>"): an add is a WishlistChange carrying the
// whole entry, a remove is a tombstone (so compaction eventually forgets the
// pair), and a user's preferences travel as a WishlistPreferences under the
// key "<user>|~prefs" (events.PreferencesKey), which no sku can produce ('~'
// is not an id character). Replaying the topic from the beginning rebuilds
// the store; both value types are decoded with the contract's strict
// decoders, so a record the contract rejects is skipped and counted.
package changelog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/kafka"
	"backinstock/topics/events"
)

func headers(schema string) []sarama.RecordHeader {
	return kafka.RecordHeaders(events.Headers(schema, ""))
}

// PutMessage is the record of an added or updated entry.
func PutMessage(topic string, e wishes.Entry) (*sarama.ProducerMessage, error) {
	data, err := events.Encode(wishes.Change(e))
	if err != nil {
		return nil, fmt.Errorf("encode change %s|%s: %w", e.UserID, e.SKU, err)
	}
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(events.WishlistKey(e.UserID, e.SKU)),
		Value: sarama.ByteEncoder(data), Headers: headers(events.SchemaWishlistChange)}, nil
}

// RemoveMessage is the tombstone of a removed entry.
func RemoveMessage(topic, userID, sku string) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(events.WishlistKey(userID, sku)),
		Headers: headers(events.SchemaWishlistChange)}
}

// PrefsMessage is the record of a user's preferences (nil: cleared), an
// events.WishlistPreferences validated before it is written.
func PrefsMessage(topic, userID string, p *wishes.Preferences, at time.Time) (*sarama.ProducerMessage, error) {
	data, err := events.Encode(events.WishlistPreferences{UserID: userID, Preferences: (*events.Preferences)(p), At: at.UTC()})
	if err != nil {
		return nil, fmt.Errorf("encode preferences of %s: %w", userID, err)
	}
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(events.PreferencesKey(userID)),
		Value: sarama.ByteEncoder(data), Headers: headers(events.SchemaWishlistPreferences)}, nil
}

// PrefsTombstone is the tombstone of a user's preferences record: what an
// erasure leaves under "<user>|~prefs", so compaction forgets the
// preferences (contacts included) instead of keeping the last value.
func PrefsTombstone(topic, userID string) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(events.PreferencesKey(userID)),
		Headers: headers(events.SchemaWishlistPreferences)}
}

// Kind tells what a record changes.
type Kind int

// Record kinds.
const (
	KindPut Kind = iota + 1
	KindRemove
	KindPrefs
)

// Record is one decoded changelog record.
type Record struct {
	Kind   Kind
	Entry  wishes.Entry // KindPut; UserID and SKU for KindRemove
	UserID string       // KindPrefs
	Prefs  *wishes.Preferences
}

// Key identifies what the record is about; a later record with the same key
// replaces an earlier one.
func (r Record) Key() string {
	if r.Kind == KindPrefs {
		return events.PreferencesKey(r.UserID)
	}
	return events.WishlistKey(r.Entry.UserID, r.Entry.SKU)
}

// Decode reads one record. Under "<user>|<sku>" an op "remove" value is
// accepted as well as a tombstone; under "<user>|~prefs" a tombstone or a
// value without preferences clears them. Values go through the contract's
// strict decoders, and must name the user (and sku) of their key.
func Decode(key, value []byte) (Record, error) {
	k := string(key)
	if user, ok := events.PreferencesUser(k); ok {
		if err := events.CheckID("user_id", user); err != nil {
			return Record{}, fmt.Errorf("preferences key %q: %w", k, err)
		}
		if value == nil {
			return Record{Kind: KindPrefs, UserID: user}, nil
		}
		pr, err := events.DecodeWishlistPreferences(value)
		if err != nil {
			return Record{}, fmt.Errorf("preferences of %s: %w", user, err)
		}
		if pr.UserID != user {
			return Record{}, fmt.Errorf("key %q does not match value user_id %s", k, pr.UserID)
		}
		return Record{Kind: KindPrefs, UserID: user, Prefs: (*wishes.Preferences)(pr.Preferences)}, nil
	}
	user, sku, ok := strings.Cut(k, "|")
	if !ok || !events.ValidID(user) || !events.ValidID(sku) {
		return Record{}, fmt.Errorf("key %q is not <user>|<sku>", k)
	}
	if value == nil {
		return Record{Kind: KindRemove, Entry: wishes.Entry{UserID: user, SKU: sku}}, nil
	}
	c, err := events.DecodeWishlistChange(value)
	if err != nil {
		return Record{}, err
	}
	if c.UserID != user || c.SKU != sku {
		return Record{}, fmt.Errorf("key %q does not match value %s|%s", k, c.UserID, c.SKU)
	}
	if c.Op == events.OpRemove {
		return Record{Kind: KindRemove, Entry: wishes.Entry{UserID: user, SKU: sku}}, nil
	}
	return Record{Kind: KindPut, Entry: wishes.EntryOf(c)}, nil
}

// Replay hands every record of topic, from the oldest offset to the end as
// it was when Replay began, to apply in batches of up to batch records (one
// partition at a time, in offset order). Records that do not decode are
// passed to bad and skipped.
func Replay(ctx context.Context, cl sarama.Client, topic string, batch int, apply func(ctx context.Context, recs []Record) error, bad func(m *sarama.ConsumerMessage, err error)) (int64, error) {
	parts, err := cl.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		return 0, fmt.Errorf("consumer for %s: %w", topic, err)
	}
	defer cons.Close()
	var total int64
	for _, p := range parts {
		n, err := replayPartition(ctx, cl, cons, topic, p, batch, apply, bad)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func replayPartition(ctx context.Context, cl sarama.Client, cons sarama.Consumer, topic string, p int32, batch int,
	apply func(ctx context.Context, recs []Record) error, bad func(m *sarama.ConsumerMessage, err error)) (int64, error) {
	oldest, err := cl.GetOffset(topic, p, sarama.OffsetOldest)
	if err != nil {
		return 0, fmt.Errorf("oldest offset of %s/%d: %w", topic, p, err)
	}
	end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
	if err != nil {
		return 0, fmt.Errorf("end offset of %s/%d: %w", topic, p, err)
	}
	if end <= oldest {
		return 0, nil
	}
	pc, err := cons.ConsumePartition(topic, p, oldest)
	if err != nil {
		return 0, fmt.Errorf("consume %s/%d: %w", topic, p, err)
	}
	defer pc.AsyncClose()
	var (
		n    int64
		recs = make([]Record, 0, batch)
	)
	flush := func() error {
		if len(recs) == 0 {
			return nil
		}
		if err := apply(ctx, recs); err != nil {
			return err
		}
		recs = recs[:0]
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case cerr := <-pc.Errors():
			if cerr != nil {
				return n, fmt.Errorf("consume %s/%d: %w", topic, p, cerr)
			}
		case m, ok := <-pc.Messages():
			if !ok {
				return n, errors.Join(flush(), fmt.Errorf("consume %s/%d: closed before offset %d", topic, p, end))
			}
			n++
			if r, err := Decode(m.Key, m.Value); err != nil {
				bad(m, err)
			} else {
				recs = append(recs, r)
			}
			if len(recs) == cap(recs) {
				if err := flush(); err != nil {
					return n, err
				}
			}
			if m.Offset+1 >= end {
				return n, flush()
			}
		}
	}
}
