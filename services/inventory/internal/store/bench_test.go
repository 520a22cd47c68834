package store

import (
	"context"
	"fmt"
	"testing"
	"time"

	"backinstock/services/inventory/internal/stock"
)

// BenchmarkApply measures the script alone: 10,000 updates per call.
func BenchmarkApply(b *testing.B) {
	s, _ := newStoreB(b)
	ups := make([]stock.Update, 10000)
	for i := range ups {
		ups[i] = stock.Update{SKU: fmt.Sprintf("bench-%d", i), Region: "us-east-1"}
	}
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for n := range b.N {
		for i := range ups {
			ups[i].Quantity = int64((i + n) % 4)
		}
		if _, err := s.Apply(ctx, time.Now(), ups, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(ups))/time.Since(start).Seconds(), "items/s")
}
