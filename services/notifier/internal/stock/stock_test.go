package stock

import (
	"testing"
	"time"

	"backinstock/topics/events"
)

func TestStale(t *testing.T) {
	at := time.Unix(1, 0)
	tests := []struct {
		name   string
		levels []events.StockLevel
		ep     int64
		stale  bool
	}{
		{"unknown sku", nil, 1, false},
		{"in stock", []events.StockLevel{{SKU: "s", Region: "r", Quantity: 3, Episode: 1, At: at}}, 1, false},
		{"sold out same episode", []events.StockLevel{{SKU: "s", Region: "r", Quantity: 0, Episode: 1, At: at}}, 1, true},
		{"sold out later episode", []events.StockLevel{{SKU: "s", Region: "r", Quantity: 0, Episode: 2, At: at}}, 1, true},
		{"sold out before this episode", []events.StockLevel{{SKU: "s", Region: "r", Quantity: 0, Episode: 1, At: at}}, 2, false},
		{"restocked again", []events.StockLevel{{SKU: "s", Region: "r", Quantity: 0, Episode: 1, At: at}, {SKU: "s", Region: "r", Quantity: 4, Episode: 2, At: at}}, 1, false},
		{"other region sold out", []events.StockLevel{{SKU: "s", Region: "other", Quantity: 0, Episode: 1, At: at}}, 1, false},
		{"older level arrives late", []events.StockLevel{{SKU: "s", Region: "r", Quantity: 0, Episode: 2, At: at}, {SKU: "s", Region: "r", Quantity: 5, Episode: 1, At: at}}, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewView("r")
			for _, l := range tt.levels {
				v.Apply(l)
			}
			if got := v.Stale(events.Notification{SKU: "s", Region: "r", Episode: tt.ep}); got != tt.stale {
				t.Fatalf("Stale = %v, want %v", got, tt.stale)
			}
		})
	}
}
