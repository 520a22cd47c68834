package optout_test

import (
	"slices"
	"strings"
	"testing"

	"backinstock/topics/optout"
)

func TestKeySharesTheWishlistUserSlot(t *testing.T) {
	// The hash tag must be exactly the user id, as in wl:{<user>}:user.
	if got := optout.Key("alice"); got != "optout:{alice}" {
		t.Fatalf("Key = %q", got)
	}
}

func TestFormatParseRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state optout.State
		value string
	}{
		{"unsubscribed", optout.Of(true, []string{"email"}), "all"},
		{"one channel", optout.Of(false, []string{"email"}), "email"},
		{"canonical order", optout.Of(false, []string{"sms", "app"}), "app,sms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.state.Format(); got != tc.value {
				t.Fatalf("Format = %q, want %q", got, tc.value)
			}
			back, err := optout.Parse(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if back.All != tc.state.All || !slices.Equal(back.Channels, tc.state.Channels) {
				t.Fatalf("Parse(%q) = %+v, want %+v", tc.value, back, tc.state)
			}
		})
	}
	if s := optout.Of(false, nil); !s.None() || s.Format() != "" {
		t.Fatalf("no opt-out: None %v Format %q", s.None(), s.Format())
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	for _, v := range []string{"", "ALL", "email,", "email,fax", "email,email", " email"} {
		_, err := optout.Parse(v)
		if err == nil {
			t.Errorf("Parse(%q) accepted", v)
			continue
		}
		if !strings.Contains(err.Error(), "opt-out record") {
			t.Errorf("Parse(%q): %v does not say what it read", v, err)
		}
	}
}

func TestSuppresses(t *testing.T) {
	for _, tc := range []struct {
		name, channel, reason string
		state                 optout.State
	}{
		{"nothing", "email", "", optout.State{}},
		{"unsubscribed", "app", optout.ReasonUnsubscribed, optout.Of(true, nil)},
		{"that channel", "email", optout.ReasonOptedOut, optout.Of(false, []string{"email"})},
		{"another channel", "sms", "", optout.Of(false, []string{"email"})},
		{"unreadable", "sms", optout.ReasonUnreadable, optout.State{Unreadable: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reason, ok := tc.state.Suppresses(tc.channel)
			if reason != tc.reason || ok != (tc.reason != "") {
				t.Fatalf("Suppresses(%s) = %q %v, want %q", tc.channel, reason, ok, tc.reason)
			}
		})
	}
}
