package config_test

import (
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"backinstock/shared/config"
)

func TestEnvDefaultsAndFlagOverrides(t *testing.T) {
	t.Setenv("X_ADDR", ":9000")
	t.Setenv("X_N", "7")
	t.Setenv("X_WAIT", "250ms")
	t.Setenv("X_LIST", "a, b,,c")
	var (
		addr string
		n    int
		wait time.Duration
		list []string
	)
	s := config.NewSet("x")
	s.String(&addr, "addr", "X_ADDR", ":8080", "listen address")
	s.Int(&n, "n", "X_N", 1, "count")
	s.Duration(&wait, "wait", "X_WAIT", time.Second, "wait")
	s.List(&list, "list", "X_LIST", nil, "list")
	if err := s.Parse([]string{"--n", "9"}); err != nil {
		t.Fatal(err)
	}
	if addr != ":9000" || n != 9 || wait != 250*time.Millisecond || strings.Join(list, "|") != "a|b|c" {
		t.Fatalf("got addr=%q n=%d wait=%s list=%v", addr, n, wait, list)
	}
}

func TestBadEnvValuesNameTheVariable(t *testing.T) {
	tests := []struct{ env, val string }{
		{"X_N", "seven"}, {"X_WAIT", "5 seconds"}, {"X_ON", "maybe"}, {"X_F", "1,5"},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(tt.env, tt.val)
			var (
				n  int
				w  time.Duration
				on bool
				f  float64
			)
			s := config.NewSet("x")
			s.Int(&n, "n", "X_N", 1, "")
			s.Duration(&w, "wait", "X_WAIT", 0, "")
			s.Bool(&on, "on", "X_ON", false, "")
			s.Float(&f, "f", "X_F", 0, "")
			err := s.Parse(nil)
			if err == nil || !strings.Contains(err.Error(), tt.env) || !strings.Contains(err.Error(), tt.val) {
				t.Fatalf("got %v, want an error naming %s and %q", err, tt.env, tt.val)
			}
		})
	}
}

func TestHelpIsReported(t *testing.T) {
	s := config.NewSet("x")
	s.FS.SetOutput(new(strings.Builder))
	if err := s.Parse([]string{"--help"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("got %v, want flag.ErrHelp", err)
	}
}

func TestProblems(t *testing.T) {
	var p config.Problems
	if p.Err() != nil {
		t.Fatal("empty problems must be nil")
	}
	p.Addf("REGION", "%q is not a configured region", "mars-1")
	p.Add(nil)
	if err := p.Err(); err == nil || err.Error() != `REGION: "mars-1" is not a configured region` {
		t.Fatalf("got %v", err)
	}
}

func TestNotNegative(t *testing.T) {
	var p config.Problems
	config.NotNegative(&p, "BATCH", 0)
	config.NotNegative(&p, "LINGER", time.Duration(0))
	if err := p.Err(); err != nil {
		t.Fatalf("zero is a default, not a problem: %v", err)
	}
	config.NotNegative(&p, "BATCH", -1)
	config.NotNegative(&p, "LINGER", -2*time.Millisecond)
	want := "BATCH: must not be negative, got -1\nLINGER: must not be negative, got -2ms"
	if err := p.Err(); err == nil || err.Error() != want {
		t.Fatalf("Err() = %v, want %q", err, want)
	}
}

func TestDefaultAndPositive(t *testing.T) {
	n, d, s := 0, 5*time.Second, "set"
	config.Default(&n, 3)
	config.Default(&d, time.Second)
	config.Default(&s, "default")
	if n != 3 || d != 5*time.Second || s != "set" {
		t.Fatalf("Default filled %d, %s, %q; want 3, 5s, \"set\"", n, d, s)
	}
	var p config.Problems
	config.Positive(&p, "BATCH", 1)
	if err := p.Err(); err != nil {
		t.Fatalf("1 is positive: %v", err)
	}
	config.Positive(&p, "BATCH", 0)
	config.Positive(&p, "TTL", -time.Second)
	want := "BATCH: must be positive, got 0\nTTL: must be positive, got -1s"
	if err := p.Err(); err == nil || err.Error() != want {
		t.Fatalf("Err() = %v, want %q", err, want)
	}
}
