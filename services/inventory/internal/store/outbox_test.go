package store

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"backinstock/services/inventory/internal/stock"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

var (
	testProduct  = &events.Product{Title: "Trail shoe", URL: "https://shop.example/p/1", Price: "89.00"}
	testDelivery = &events.Delivery{Mode: events.DeliveryAll}
	testTP       = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	testAt       = time.UnixMilli(1764500000123).UTC()
)

func TestOutboxEntryRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    OutboxEntry
	}{
		{"level change", OutboxEntry{SKU: "a", Region: "us-east-1", Quantity: 7, Previous: 5, Episode: 1, At: testAt}},
		{"level change with traceparent", OutboxEntry{SKU: "a", Region: "us-east-1", Quantity: 0, Previous: 7, Episode: 1, At: testAt, Traceparent: testTP}},
		{"restock", OutboxEntry{SKU: "a", Region: "eu-west-1", Quantity: 3, Episode: 2, At: testAt, Restock: true}},
		{"restock with everything", OutboxEntry{SKU: "a", Region: "eu-west-1", Quantity: 3, Episode: 2, At: testAt, Restock: true,
			Product: testProduct, Delivery: testDelivery, Traceparent: testTP}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeOutboxEntry(EncodeOutboxEntry(tt.e))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.e) {
				t.Fatalf("decoded %+v, want %+v", got, tt.e)
			}
		})
	}
}

func TestDecodeOutboxEntryRefuses(t *testing.T) {
	valid := func(k string, v any) map[string]any {
		m := EncodeOutboxEntry(OutboxEntry{SKU: "a", Region: "us-east-1", Quantity: 3, Episode: 1, At: testAt, Restock: true})
		m[k] = v
		return m
	}
	tests := []struct {
		name   string
		values map[string]any
		field  string
	}{
		{"values missing", valid(fieldValues, nil), fieldValues},
		{"three values", valid(fieldValues, "3:0:1"), fieldValues},
		{"values not numbers", valid(fieldValues, "3:0:x:1"), fieldValues},
		{"product not JSON", valid(fieldProduct, "{"), fieldProduct},
		{"delivery not JSON", valid(fieldDelivery, "[1]"), fieldDelivery},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeOutboxEntry(tt.values)
			if err == nil || !strings.Contains(err.Error(), "field "+tt.field+":") {
				t.Fatalf("got %v, want an error naming field %s", err, tt.field)
			}
		})
	}
}

// TestScriptWritesEncodedEntry holds apply.lua, which composes the entries,
// to EncodeOutboxEntry and DecodeOutboxEntry: every kind of entry the script
// writes is compared field by field with the Go encoding.
func TestScriptWritesEncodedEntry(t *testing.T) {
	s, rdb := newStore(t, 1)
	ctx := context.Background()
	sku := testenv.Unique(t, "sku")
	const region = "us-east-1"
	steps := []struct {
		u    stock.Update
		want OutboxEntry
	}{
		{stock.Update{Quantity: 0},
			OutboxEntry{Quantity: 0, Previous: 0, Episode: 0}},
		{stock.Update{Quantity: 5, Product: testProduct, Delivery: testDelivery, Traceparent: testTP},
			OutboxEntry{Quantity: 5, Previous: 0, Episode: 1, Restock: true, Product: testProduct, Delivery: testDelivery, Traceparent: testTP}},
		{stock.Update{Quantity: 7, Traceparent: testTP},
			OutboxEntry{Quantity: 7, Previous: 5, Episode: 1, Traceparent: testTP}},
		{stock.Update{Quantity: 0},
			OutboxEntry{Quantity: 0, Previous: 7, Episode: 1}},
		// The product is not sent again: the script takes the stored one.
		{stock.Update{Quantity: 2},
			OutboxEntry{Quantity: 2, Previous: 0, Episode: 2, Restock: true, Product: testProduct}},
	}
	key := OutboxKey(s.ShardOf(sku))
	for i, st := range steps {
		u := st.u
		u.SKU, u.Region = sku, region
		at := testAt.Add(time.Duration(i) * time.Second)
		if _, err := s.Apply(ctx, at, []stock.Update{u}, ""); err != nil {
			t.Fatal(err)
		}
		want := st.want
		want.SKU, want.Region, want.At = sku, region, at
		msgs, err := rdb.XRevRangeN(ctx, key, "+", "-", 1).Result()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("step %d: read outbox: %v, %d entries", i, err, len(msgs))
		}
		if enc := EncodeOutboxEntry(want); !reflect.DeepEqual(msgs[0].Values, enc) {
			t.Fatalf("step %d: script wrote %v, EncodeOutboxEntry %v", i, msgs[0].Values, enc)
		}
		got, err := DecodeOutboxEntry(msgs[0].Values)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("step %d: decoded %+v, want %+v", i, got, want)
		}
	}
}
