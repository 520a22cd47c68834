package store

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"backinstock/topics/events"
)

// OutboxEntry is one entry of a shard's outbox: a level change, which is also
// a restock when Restock is set.
type OutboxEntry struct {
	SKU      string
	Region   string
	Quantity int64
	Previous int64
	Episode  int64
	// At is when the update was applied (millisecond precision).
	At      time.Time
	Restock bool
	// Product and Delivery travel on restock entries only.
	Product     *events.Product
	Delivery    *events.Delivery
	Traceparent string
}

// The entry's field names. apply.lua gets them (with valuesSep and
// restockMark) as arguments, so these are their only spelling.
const (
	fieldSKU    = "k"
	fieldRegion = "r"
	// fieldValues holds quantity, previous, episode and at_ms joined by
	// valuesSep: one field, as fewer fields make the append cheaper. The
	// script composes it (it decides previous and episode);
	// TestScriptWritesEncodedEntry holds it to EncodeOutboxEntry.
	fieldValues      = "v"
	fieldRestock     = "x"
	fieldProduct     = "pr"
	fieldDelivery    = "d"
	fieldTraceparent = "tp"

	valuesSep   = ":"
	restockMark = "1"
)

// entryFormat is what apply.lua needs to write an entry, in the order of its
// ARGV[4..12].
var entryFormat = []any{fieldSKU, fieldRegion, fieldValues, fieldRestock, fieldProduct, fieldDelivery, fieldTraceparent, valuesSep, restockMark}

// EncodeOutboxEntry is the stream fields of e, exactly as apply.lua writes
// them: product, delivery and the traceparent (even empty) on restocks only,
// the traceparent on a level change only when set.
func EncodeOutboxEntry(e OutboxEntry) map[string]any {
	nums := []int64{e.Quantity, e.Previous, e.Episode, e.At.UnixMilli()}
	parts := make([]string, len(nums))
	for i, n := range nums {
		parts[i] = strconv.FormatInt(n, 10)
	}
	m := map[string]any{fieldSKU: e.SKU, fieldRegion: e.Region, fieldValues: strings.Join(parts, valuesSep)}
	if e.Restock {
		m[fieldRestock] = restockMark
		m[fieldProduct] = jsonOrEmpty(e.Product)
		m[fieldDelivery] = jsonOrEmpty(e.Delivery)
		m[fieldTraceparent] = e.Traceparent
	} else if e.Traceparent != "" {
		m[fieldTraceparent] = e.Traceparent
	}
	return m
}

// DecodeOutboxEntry reads the fields of an outbox stream entry.
func DecodeOutboxEntry(values map[string]any) (OutboxEntry, error) {
	str := func(k string) string { s, _ := values[k].(string); return s }
	vals := strings.Split(str(fieldValues), valuesSep)
	if len(vals) != 4 {
		return OutboxEntry{}, fmt.Errorf("decode outbox entry: field %s: want quantity%[2]sprevious%[2]sepisode%[2]sat, got %[3]q", fieldValues, valuesSep, str(fieldValues))
	}
	var nums [4]int64
	for i, v := range vals {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return OutboxEntry{}, fmt.Errorf("decode outbox entry: field %s: %w", fieldValues, err)
		}
		nums[i] = n
	}
	e := OutboxEntry{
		SKU: str(fieldSKU), Region: str(fieldRegion),
		Quantity: nums[0], Previous: nums[1], Episode: nums[2], At: time.UnixMilli(nums[3]).UTC(),
		Restock: str(fieldRestock) == restockMark, Traceparent: str(fieldTraceparent),
	}
	if pr := str(fieldProduct); pr != "" {
		e.Product = new(events.Product)
		if err := json.Unmarshal([]byte(pr), e.Product); err != nil {
			return OutboxEntry{}, fmt.Errorf("decode outbox entry: field %s: %w", fieldProduct, err)
		}
	}
	if d := str(fieldDelivery); d != "" {
		e.Delivery = new(events.Delivery)
		if err := json.Unmarshal([]byte(d), e.Delivery); err != nil {
			return OutboxEntry{}, fmt.Errorf("decode outbox entry: field %s: %w", fieldDelivery, err)
		}
	}
	return e, nil
}
