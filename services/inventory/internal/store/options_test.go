package store

import (
	"strings"
	"testing"
	"time"
)

func TestNewRefusesBadOptions(t *testing.T) {
	tests := []struct {
		o     Options
		field string
	}{
		{Options{Shards: -1}, "Shards"},
		{Options{MinQuantity: -1}, "MinQuantity"},
		{Options{IdempotencyTTL: -time.Hour}, "IdempotencyTTL"},
		{Options{IdempotencyTTL: time.Millisecond}, "IdempotencyTTL"},
		{Options{Lease: -time.Second}, "Lease"},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			_, err := New(nil, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("New(%+v) = %v, want an error naming %s", tt.o, err, tt.field)
			}
		})
	}
}

func TestNewZeroOptionsTakeDefaults(t *testing.T) {
	s, err := New(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Shards: DefaultShards, MinQuantity: DefaultMinQuantity, IdempotencyTTL: DefaultIdempotencyTTL, Lease: DefaultLease}
	if s.o != want {
		t.Fatalf("options %+v, want %+v", s.o, want)
	}
}
