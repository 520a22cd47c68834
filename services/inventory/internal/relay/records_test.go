package relay

import (
	"reflect"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"backinstock/services/inventory/internal/store"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// TestRecordsOfRestockEntry: the relay builds its records from what the
// store decodes.
func TestRecordsOfRestockEntry(t *testing.T) {
	at := time.UnixMilli(1764500000123).UTC()
	e := store.OutboxEntry{SKU: "sku-1", Region: "us-east-1", Quantity: 4, Previous: 0, Episode: 3, At: at, Restock: true,
		Product: &events.Product{Title: "Trail shoe"}, Delivery: &events.Delivery{Mode: events.DeliveryAll}}
	stockMsg, restockMsg, err := records(redis.XMessage{ID: "1-0", Values: store.EncodeOutboxEntry(e)})
	if err != nil {
		t.Fatal(err)
	}
	if stockMsg.Topic != catalog.Stock || stockMsg.Key != sarama.StringEncoder(events.StockKey(e.SKU, e.Region)) || !stockMsg.Timestamp.Equal(at) {
		t.Fatalf("stock record %s %v at %s", stockMsg.Topic, stockMsg.Key, stockMsg.Timestamp)
	}
	lvl, err := events.DecodeStockLevel(stockMsg.Value.(sarama.ByteEncoder))
	if err != nil {
		t.Fatal(err)
	}
	if want := (events.StockLevel{SKU: e.SKU, Region: e.Region, Quantity: 4, Episode: 3, At: at}); lvl != want {
		t.Fatalf("stock level %+v, want %+v", lvl, want)
	}
	if restockMsg == nil || restockMsg.Topic != catalog.Restock || restockMsg.Key != sarama.StringEncoder(e.SKU) {
		t.Fatalf("restock record %+v", restockMsg)
	}
	ev, err := events.DecodeRestockEvent(restockMsg.Value.(sarama.ByteEncoder))
	if err != nil {
		t.Fatal(err)
	}
	want := events.RestockEvent{EventID: events.RestockEventID(e.SKU, e.Region, 3), SKU: e.SKU, Region: e.Region,
		Quantity: 4, PreviousQuantity: 0, Episode: 3, OccurredAt: at, Product: e.Product, Delivery: e.Delivery}
	if !reflect.DeepEqual(ev, want) {
		t.Fatalf("restock event %+v, want %+v", ev, want)
	}
}

// TestKeepKeyOrderResendsFromTheFirstGap: in a batch where a key's first
// record failed and its later ones were acknowledged, the retry sends the
// key's records again from the failed one on, so the key's last records in
// Kafka are in outbox order; other keys' acknowledgements stand.
func TestKeepKeyOrderResendsFromTheFirstGap(t *testing.T) {
	rec := func(h, topic, key string) pendingRecord {
		return pendingRecord{header: h, msg: &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key)}}
	}
	recs := []pendingRecord{
		rec("a1", catalog.Stock, "a"), rec("b1", catalog.Stock, "b"), rec("a2", catalog.Stock, "a"),
		rec("a2r", catalog.Restock, "a"), rec("b2", catalog.Stock, "b"), rec("a3", catalog.Stock, "a"),
	}
	// a1 failed; b1 failed; the rest were acknowledged.
	acked := map[string]bool{"a2": true, "a2r": true, "b2": true, "a3": true}
	keepKeyOrder(recs, acked)
	// a's stock records go again from a1; b's from b1; the restock topic's
	// key a had no gap, so a2r stands.
	if want := map[string]bool{"a2r": true}; !reflect.DeepEqual(acked, want) {
		t.Fatalf("acknowledged after keepKeyOrder: %v, want %v", acked, want)
	}
	acked = map[string]bool{"a1": true, "b1": true, "a2": true}
	keepKeyOrder(recs, acked)
	if want := map[string]bool{"a1": true, "b1": true, "a2": true}; !reflect.DeepEqual(acked, want) {
		t.Fatalf("a batch acknowledged in order lost acknowledgements: %v, want %v", acked, want)
	}
}
