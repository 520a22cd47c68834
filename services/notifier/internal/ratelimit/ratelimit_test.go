package ratelimit

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	known := func(c string) bool { return c == "sms" || c == "email" || c == "app" }
	tests := []struct {
		spec string
		want map[string]Limit
		ok   bool
	}{
		{"", map[string]Limit{}, true},
		{"sms=100", map[string]Limit{"sms": {100, 10}}, true},
		{"sms=100, email=2000:50", map[string]Limit{"sms": {100, 10}, "email": {2000, 50}}, true},
		{"sms=5", map[string]Limit{"sms": {5, 1}}, true},
		{"fax=1", nil, false},
		{"sms", nil, false},
		{"sms=-1", nil, false},
		{"sms=10:0", nil, false},
		{"sms=1,sms=2", nil, false},
	}
	for _, tt := range tests {
		got, err := Parse(tt.spec, known)
		if (err == nil) != tt.ok {
			t.Fatalf("Parse(%q) err = %v, want ok=%v", tt.spec, err, tt.ok)
		}
		if !tt.ok {
			continue
		}
		if len(got) != len(tt.want) {
			t.Fatalf("Parse(%q) = %v, want %v", tt.spec, got, tt.want)
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Fatalf("Parse(%q)[%s] = %v, want %v", tt.spec, k, got[k], v)
			}
		}
	}
}

func TestReserveSpacesChunks(t *testing.T) {
	s := NewSet(map[string]Limit{"sms": {PerSecond: 50, Burst: 5}})
	now := time.Unix(1000, 0)
	if got := s.Chunk("sms", 500); got != 5 {
		t.Fatalf("Chunk = %d, want 5", got)
	}
	if got := s.Chunk("email", 500); got != 500 {
		t.Fatalf("unlimited Chunk = %d, want 500", got)
	}
	if d := s.Reserve("sms", 5, now); d != 0 {
		t.Fatalf("first burst waits %v", d)
	}
	// 5 more tokens at 50/s take 100ms.
	if d := s.Reserve("sms", 5, now); d != 100*time.Millisecond {
		t.Fatalf("second chunk waits %v, want 100ms", d)
	}
	if d := s.Reserve("email", 1000, now); d != 0 {
		t.Fatalf("unlimited channel waits %v", d)
	}
}
