package clicklink

import (
	"errors"
	"strings"
	"testing"
	"time"

	"backinstock/topics/events"
)

const (
	secretA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	secretB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func link() Link {
	return Link{UserID: "alice", SKU: "SKU-7", Region: "us-east-1", Channel: events.ChannelEmail, Episode: 3,
		URL: "https://shop.example/products/kettle-steel-1l?variant=2#top", Expires: now.Add(30 * 24 * time.Hour)}
}

func keys(t *testing.T, s string) Keys {
	t.Helper()
	ks, err := ParseKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

func TestRoundTrip(t *testing.T) {
	ks := keys(t, "k1:"+secretA)
	l := link()
	tok, err := ks.Sign(l)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range tok {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			t.Fatalf("token %q holds %q: not one URL path segment", tok, c)
		}
	}
	got, err := ks.Verify(tok, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Link != l || got.KeyID != "k1" {
		t.Errorf("claim %+v, want %+v from k1", got, l)
	}
	if got.NotificationID() != events.NotificationID("alice", "SKU-7", "us-east-1", 3, events.ChannelEmail) {
		t.Errorf("notification id %s", got.NotificationID())
	}
	// The length the package documents for a 45-character product URL.
	l.URL = "https://shop.example/products/kettle-steel-1l"
	if tok, _ = ks.Sign(l); len(tok) > 130 {
		t.Errorf("token of a 45-character URL is %d characters: %s", len(tok), tok)
	}
	u, err := ks.URL("https://e.shop.example/", l)
	if err != nil || !strings.HasPrefix(u, "https://e.shop.example/c/c1.k1.alice.SKU-7.") {
		t.Errorf("URL %q, %v", u, err)
	}
}

func TestKeyRotation(t *testing.T) {
	old := keys(t, "old:"+secretA)
	rotated := keys(t, "new:"+secretB+",old:"+secretA)
	onlyNew := keys(t, "new:"+secretB)
	forged := keys(t, "old:"+secretB) // the right kid, the wrong secret

	tokOld, _ := old.Sign(link())
	tokNew, _ := rotated.Sign(link())
	if !strings.HasPrefix(tokNew, "c1.new.") {
		t.Fatalf("rotated keys sign with %q, want the first key", tokNew)
	}
	cases := []struct {
		name string
		ks   Keys
		tok  string
		err  error
	}{
		{"old token, rotated keys", rotated, tokOld, nil},
		{"new token, rotated keys", rotated, tokNew, nil},
		{"old token after the old key is dropped", onlyNew, tokOld, ErrUnknownKey},
		{"new token, old keys", old, tokNew, ErrUnknownKey},
		{"old token, a forged secret under its kid", forged, tokOld, ErrBadSignature},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.ks.Verify(c.tok, now)
			if !errors.Is(err, c.err) {
				t.Fatalf("err %v, want %v", err, c.err)
			}
		})
	}
}

func TestExpiry(t *testing.T) {
	ks := keys(t, "k1:"+secretA)
	l := link()
	l.Expires = now.Add(time.Hour)
	tok, _ := ks.Sign(l)
	if _, err := ks.Verify(tok, now.Add(time.Hour-time.Second)); err != nil {
		t.Errorf("a second before expiry: %v", err)
	}
	for _, at := range []time.Time{now.Add(time.Hour), now.Add(48 * time.Hour)} {
		if _, err := ks.Verify(tok, at); !errors.Is(err, ErrExpired) {
			t.Errorf("at %s: err %v, want ErrExpired", at, err)
		}
	}
}

// TestTamperingAndTruncation: every change to a genuine token, and every
// prefix of it, is refused.
func TestTamperingAndTruncation(t *testing.T) {
	ks := keys(t, "k1:"+secretA)
	tok, _ := ks.Sign(link())
	for i := range len(tok) - 1 {
		if _, err := ks.Verify(tok[:i], now); err == nil {
			t.Fatalf("prefix %q accepted", tok[:i])
		}
	}
	for i := range len(tok) {
		b := []byte(tok)
		if b[i] == 'x' {
			b[i] = 'y'
		} else {
			b[i] = 'x'
		}
		if _, err := ks.Verify(string(b), now); err == nil {
			t.Fatalf("token changed at %d accepted: %s", i, b)
		}
	}
	// A part swapped for another valid value keeps the shape, not the MAC.
	parts := strings.Split(tok, ".")
	parts[8] = "aHR0cHM6Ly9ldmlsLmV4YW1wbGUv" // https://evil.example/
	if _, err := ks.Verify(strings.Join(parts, "."), now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("another URL under the same MAC: %v", err)
	}
	if _, err := ks.Verify(tok+".x", now); !errors.Is(err, ErrMalformed) {
		t.Errorf("an extra part: %v", err)
	}
	if _, err := ks.Verify(strings.Repeat("a", MaxTokenLen+1), now); !errors.Is(err, ErrMalformed) {
		t.Errorf("a huge token: %v", err)
	}
}

// TestSignRefusesWhatCannotBeALink: bad fields are named, and no URL but
// http(s) is ever signed (no javascript:, no scheme-relative //host).
func TestSignRefusesWhatCannotBeALink(t *testing.T) {
	ks := keys(t, "k1:"+secretA)
	cases := []struct {
		name string
		mod  func(*Link)
		want string
	}{
		{"user", func(l *Link) { l.UserID = "a.b" }, "user_id: must match"},
		{"sku", func(l *Link) { l.SKU = "" }, "sku: required"},
		{"region", func(l *Link) { l.Region = "US" }, "region: must match"},
		{"channel", func(l *Link) { l.Channel = "fax" }, "channel: must be one of"},
		{"episode", func(l *Link) { l.Episode = 0 }, "episode: must be at least 1"},
		{"expiry", func(l *Link) { l.Expires = time.Time{} }, "expires: required"},
		{"javascript", func(l *Link) { l.URL = "javascript:alert(1)" }, "url: must be an absolute http"},
		{"scheme-relative", func(l *Link) { l.URL = "//evil.example/" }, "url: must be an absolute http"},
		{"no url", func(l *Link) { l.URL = "" }, "url: required"},
	}
	for _, c := range cases {
		l := link()
		c.mod(&l)
		if _, err := ks.Sign(l); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := Keys(nil).Sign(link()); err == nil {
		t.Error("signed without keys")
	}
	if _, err := ParseKeys("k1:short"); err == nil || strings.Contains(err.Error(), "short") {
		t.Errorf("short secret: %v", err)
	}
}

// TestNotAnUnsubscribeToken: under one shared secret, an unsubscribe token
// is no click token.
func TestNotAnUnsubscribeToken(t *testing.T) {
	ks := keys(t, "k1:"+secretA)
	for _, tok := range []string{"v1.k1.alice.all.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ""} {
		if _, err := ks.Verify(tok, now); !errors.Is(err, ErrMalformed) {
			t.Errorf("%q: %v", tok, err)
		}
	}
}

// FuzzVerify: whatever the input, Verify does not panic, and what it
// accepts is a link Sign would have made: an http(s) URL, a future expiry,
// the same token back.
func FuzzVerify(f *testing.F) {
	ks, err := ParseKeys("k1:" + secretA)
	if err != nil {
		f.Fatal(err)
	}
	tok, _ := ks.Sign(link())
	f.Add(tok)
	f.Add(tok[:len(tok)/2])
	f.Add(strings.Replace(tok, ".k1.", ".k2.", 1))
	f.Add("c1.k1.a.b.c.d.e.f.g.h")
	f.Add("c1.k1........")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ks.Verify(s, now)
		if err != nil {
			return
		}
		if !strings.HasPrefix(c.URL, "https://") && !strings.HasPrefix(c.URL, "http://") {
			t.Fatalf("accepted %q with URL %q", s, c.URL)
		}
		if !now.Before(c.Expires) {
			t.Fatalf("accepted %q expired at %s", s, c.Expires)
		}
		again, err := ks.Sign(c.Link)
		if err != nil || again != s {
			t.Fatalf("accepted %q, which signs back as %q (%v)", s, again, err)
		}
	})
}
