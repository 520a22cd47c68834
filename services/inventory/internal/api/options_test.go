package api

import (
	"strings"
	"testing"

	"go.uber.org/zap/zaptest"

	"backinstock/services/inventory/internal/stock"
)

var rules = stock.Rules{Regions: []string{"us-east-1"}}

func TestNewRefusesBadOptions(t *testing.T) {
	tests := []struct {
		o     Options
		field string
	}{
		{Options{}, "Rules.Regions"},
		{Options{Rules: rules, MaxBodyBytes: -1}, "MaxBodyBytes"},
		{Options{Rules: rules, BulkMaxBytes: -1}, "BulkMaxBytes"},
		{Options{Rules: rules, BulkMaxItems: -1}, "BulkMaxItems"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			_, err := New(nil, tt.o, zaptest.NewLogger(t), NewMetrics(nil))
			if err == nil || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("New(%+v) = %v, want an error naming %s", tt.o, err, tt.field)
			}
		})
	}
}

func TestNewZeroLimitsTakeDefaults(t *testing.T) {
	a, err := New(nil, Options{Rules: rules}, zaptest.NewLogger(t), NewMetrics(nil))
	if err != nil {
		t.Fatal(err)
	}
	if a.o.MaxBodyBytes != DefaultMaxBodyBytes || a.o.BulkMaxBytes != DefaultBulkMaxBytes || a.o.BulkMaxItems != DefaultBulkMaxItems {
		t.Fatalf("options %+v, want the default limits", a.o)
	}
}
