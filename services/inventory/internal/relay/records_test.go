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
