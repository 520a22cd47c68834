package pipeline_test

import (
	"testing"

	"backinstock/services/notifier/internal/pipeline"
	"backinstock/shared/stockview"
	"backinstock/topics/events"
)

// What the view keeps of several levels (another region's, an older episode
// arriving late) is shared/stockview's rule, tested there.
func TestStale(t *testing.T) {
	tests := []struct {
		name  string
		now   stockview.Level
		known bool
		ep    int64
		stale bool
	}{
		{"unknown sku", stockview.Level{}, false, 1, false},
		{"in stock", stockview.Level{Quantity: 3, Episode: 1}, true, 1, false},
		{"sold out same episode", stockview.Level{Quantity: 0, Episode: 1}, true, 1, true},
		{"sold out later episode", stockview.Level{Quantity: 0, Episode: 2}, true, 1, true},
		{"sold out before this episode", stockview.Level{Quantity: 0, Episode: 1}, true, 2, false},
		{"restocked again", stockview.Level{Quantity: 4, Episode: 2}, true, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := events.Notification{SKU: "s", Region: "r", Episode: tt.ep}
			if got := pipeline.Stale(n, tt.now, tt.known); got != tt.stale {
				t.Fatalf("Stale = %v, want %v", got, tt.stale)
			}
		})
	}
}
