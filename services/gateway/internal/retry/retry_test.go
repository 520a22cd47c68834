package retry_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"backinstock/services/gateway/internal/retry"
)

func TestClassify(t *testing.T) {
	cause := errors.New("boom")
	cases := []struct {
		name      string
		err       error
		permanent bool
		code      string
	}{
		{"permanent", retry.Permanent("smtp_550", cause), true, "smtp_550"},
		{"transient", retry.Transient("smtp_451", cause), false, "smtp_451"},
		{"wrapped permanent", fmt.Errorf("send: %w", retry.Permanent("no_contact", cause)), true, "no_contact"},
		{"unclassified", cause, false, "unknown"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, code := retry.Classify(c.err)
			if p != c.permanent || code != c.code {
				t.Errorf("Classify = %v, %q; want %v, %q", p, code, c.permanent, c.code)
			}
			if !errors.Is(c.err, cause) {
				t.Error("the cause is not reachable through errors.Is")
			}
		})
	}
}

func TestBackOff(t *testing.T) {
	s := time.Second
	cases := []struct {
		name string
		p    retry.Policy
		want []time.Duration
	}{
		{"doubles to the cap", retry.Policy{AckWait: 30 * s, MaxAttempts: 12, MaxBackoff: 5 * time.Minute},
			[]time.Duration{30 * s, 60 * s, 120 * s, 240 * s, 300 * s}},
		{"no longer than the attempts", retry.Policy{AckWait: s, MaxAttempts: 3, MaxBackoff: time.Hour},
			[]time.Duration{s, 2 * s, 4 * s}},
		{"cap equal to the ack wait", retry.Policy{AckWait: s, MaxAttempts: 5, MaxBackoff: s},
			[]time.Duration{s}},
		{"cap between two steps", retry.Policy{AckWait: s, MaxAttempts: 10, MaxBackoff: 3 * s},
			[]time.Duration{s, 2 * s, 3 * s}},
		{"one attempt", retry.Policy{AckWait: s, MaxAttempts: 1, MaxBackoff: time.Minute},
			[]time.Duration{s}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.BackOff(); !slices.Equal(got, c.want) {
				t.Errorf("BackOff = %v, want %v", got, c.want)
			}
		})
	}
}

func TestNakDelayAndWait(t *testing.T) {
	p := retry.Policy{AckWait: 30 * time.Second, MaxAttempts: 6, MaxBackoff: 2 * time.Minute, FirstRetry: 2 * time.Second}
	cases := []struct {
		rnd  float64
		want time.Duration
	}{
		{0, time.Second},
		{0.5, 1500 * time.Millisecond},
		{0.999, 1999 * time.Millisecond},
	}
	for _, c := range cases {
		if got := p.NakDelay(c.rnd); got.Round(time.Millisecond) != c.want {
			t.Errorf("NakDelay(%v) = %s, want %s", c.rnd, got, c.want)
		}
	}
	waits := []struct {
		attempt int
		want    time.Duration
	}{
		{1, 2 * time.Second},    // back-off 30 s: the delay alone
		{2, 32 * time.Second},   // 60 s slot: +30 s
		{3, 92 * time.Second},   // 120 s slot: +90 s
		{4, 92 * time.Second},   // capped at 120 s
		{9, 92 * time.Second},   // past the list: its last entry
		{0, 2 * time.Second},    // out of range: the first slot
		{-1, 2 * time.Second},   // likewise
		{100, 92 * time.Second}, // likewise at the other end
	}
	for _, w := range waits {
		if got := p.Wait(w.attempt, 2*time.Second); got != w.want {
			t.Errorf("Wait(%d, 2s) = %s, want %s", w.attempt, got, w.want)
		}
	}
}

func TestGiveUpAndValidate(t *testing.T) {
	p := retry.Policy{AckWait: time.Second, MaxAttempts: 3, MaxBackoff: time.Minute, FirstRetry: time.Second}
	for attempt, want := range map[int]bool{1: false, 2: false, 3: true, 4: true} {
		if got := p.GiveUp(attempt); got != want {
			t.Errorf("GiveUp(%d) = %v, want %v", attempt, got, want)
		}
	}
	if err := p.Validate(); err != nil {
		t.Errorf("valid policy: %v", err)
	}
	bad := retry.Policy{AckWait: time.Minute, MaxBackoff: time.Second}
	err := bad.Validate()
	for _, want := range []string{"max attempts must be at least 1", "max back-off 1s is shorter than the ack wait 1m0s", "first retry must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want %q in it", err, want)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	p := retry.Policy{AckWait: 30 * time.Second, MaxAttempts: 6, MaxBackoff: 2 * time.Minute, FirstRetry: 2 * time.Second}
	err := fmt.Errorf("send: %w", retry.TransientAfter("http_429", errors.New("slow down"), 7*time.Second))
	if permanent, code := retry.Classify(err); permanent || code != "http_429" {
		t.Fatalf("Classify = %v, %q; want transient http_429", permanent, code)
	}
	cases := []struct {
		err  error
		want time.Duration
	}{
		{err, 7 * time.Second}, // the provider's wish is later than the jitter
		{retry.TransientAfter("http_503", errors.New("down"), 10*time.Millisecond), time.Second},  // earlier: the policy's delay
		{retry.TransientAfter("http_429", errors.New("tomorrow"), 24*time.Hour), 2 * time.Minute}, // capped
		{retry.Transient("connection", errors.New("refused")), time.Second},
		{errors.New("unclassified"), time.Second},
	}
	for _, c := range cases {
		if got := p.Delay(0, retry.RetryAfter(c.err)); got != c.want {
			t.Errorf("Delay after %v = %s, want %s", c.err, got, c.want)
		}
	}
	if got := retry.RetryAfter(retry.TransientAfter("x", errors.New("x"), -time.Second)); got != 0 {
		t.Errorf("negative Retry-After kept as %s", got)
	}
}
