package api

import (
	"strings"
	"testing"
	"time"
)

func TestOptionsZeroMeansDefaultNegativeIsRefused(t *testing.T) {
	o := Options{Token: "t"}
	o.setDefaults()
	if o.MaxBodyBytes != 64<<10 || o.MaxImportBytes != 1<<30 || o.ImportBatch != 2000 || o.ImportTimeout != time.Hour || o.RequestTimeout != 4*time.Second || o.Validate() != nil {
		t.Fatalf("defaults %+v: %v", o, o.Validate())
	}
	tests := []struct {
		o    Options
		want string
	}{
		{Options{}, "Token"},
		{Options{Token: "t", MaxBodyBytes: -1}, "MaxBodyBytes"},
		{Options{Token: "t", MaxImportBytes: -1}, "MaxImportBytes"},
		{Options{Token: "t", ImportBatch: -1}, "ImportBatch"},
		{Options{Token: "t", ImportTimeout: -time.Second}, "ImportTimeout"},
		{Options{Token: "t", RequestTimeout: -time.Second}, "RequestTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			tt.o.setDefaults()
			if _, err := Handler(tt.o, nil, NewMetrics(nil), nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Handler(%+v) = %v, want an error naming %s", tt.o, err, tt.want)
			}
		})
	}
}
