package relay

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"backinstock/services/inventory/internal/store"
	"backinstock/shared/kafka"
)

func newStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.New(nil, store.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestNewRefusesBadOptions(t *testing.T) {
	tests := []struct {
		o     Options
		field string
	}{
		{Options{Batch: -1}, "Batch"},
		{Options{DrainTimeout: -time.Second}, "DrainTimeout"},
		{Options{LeaseTTL: -time.Second}, "LeaseTTL"},
		{Options{LeaseTTL: time.Microsecond}, "LeaseTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			_, err := New(newStore(t), kafka.Config{}, tt.o, zaptest.NewLogger(t))
			if err == nil || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("New(%+v) = %v, want an error naming %s", tt.o, err, tt.field)
			}
		})
	}
}

func TestNewZeroOptionsTakeDefaults(t *testing.T) {
	r, err := New(newStore(t), kafka.Config{}, Options{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if r.o.Batch != DefaultBatch || r.o.DrainTimeout != DefaultDrainTimeout || r.o.LeaseTTL != DefaultLeaseTTL || r.o.Metrics == nil {
		t.Fatalf("options %+v, want the defaults", r.o)
	}
}
