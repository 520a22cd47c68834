package store

import (
	"fmt"
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
		{Options{}, "Shards"},
		{Options{Shards: 1, MinQuantity: -1}, "MinQuantity"},
		{Options{Shards: 1, IdempotencyTTL: -time.Hour}, "IdempotencyTTL"},
		{Options{Shards: 1, IdempotencyTTL: time.Millisecond}, "IdempotencyTTL"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v", tt.o), func(t *testing.T) {
			_, err := New(nil, tt.o)
			if err == nil || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("New(%+v) = %v, want an error naming %s", tt.o, err, tt.field)
			}
		})
	}
}

func TestNewZeroOptionsTakeDefaults(t *testing.T) {
	s, err := New(nil, Options{Shards: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Shards: 3, MinQuantity: DefaultMinQuantity, IdempotencyTTL: DefaultIdempotencyTTL}
	if s.o != want {
		t.Fatalf("options %+v, want %+v", s.o, want)
	}
}
