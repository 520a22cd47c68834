// Package clicklink is the contract of a notification's tracked link: the
// signed token the gateway puts in every rendered message's product link
// (<engagement base URL>/c/<token>) and the engagement service verifies
// before it records the click and redirects, the keys that sign it, and
// the route.
//
// The gateway signs and the engagement service verifies, so the token's
// layout, the bytes the MAC covers and the key format are written here and
// only here.
//
// A token is
//
//	c1.<kid>.<user_id>.<sku>.<region>.<channel>.<episode>.<expires>.<url>.<mac>
//
// kid names the key that signed it (the first key of CLICK_KEYS signs,
// every listed key verifies: rotation); user, sku, region, channel and
// episode are the notification's, so the notification id is derived
// (events.NotificationID), not carried; expires is the Unix time in
// seconds, base 36; url is the product URL the click goes to, unpadded
// base64url; mac is the first 16 bytes of HMAC-SHA256 over all the other
// parts, unpadded base64url (128 bits: forging one means guessing them).
// Every part is [A-Za-z0-9_-], so the token is one URL path segment as it
// stands.
//
// The redirect target travels in the token, so verifying and redirecting
// need no store and no copy of the restock: nothing to look up, nothing
// that can be missing. The price is length: a product URL of 45 characters
// makes a token of about 125 (most of it the URL's 60 base64 characters).
// Only http and https targets are signed or accepted, so a valid token is
// never an open redirect.
package clicklink

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// Path is the engagement service's route of the link: Path + token.
const Path = "/c/"

// version is the token's first part: a later layout gets a new one.
const version = "c1"

// macLen is how much of the HMAC-SHA256 a token keeps.
const macLen = 16

// MaxTokenLen bounds what Verify reads: the longest token the parts'
// limits allow (three ids, a region, a 2,048-byte URL in base64), rounded
// up. A longer path is refused before any decoding.
const MaxTokenLen = 3600

// Errors a Verify may return, wrapped with the detail. The engagement
// service answers every one with the same plain 404: a caller learns
// nothing about which check failed.
var (
	ErrMalformed    = errors.New("malformed click token")
	ErrUnknownKey   = errors.New("click token signed with an unknown key")
	ErrBadSignature = errors.New("click token signature does not match")
	ErrExpired      = errors.New("click token expired")
	errNoKeys       = errors.New("no keys")
)

// Keys are the keys in use: the first signs, all verify. They have the
// UNSUBSCRIBE_KEYS format and rules (package unsubscribe), parsed by the
// same code; a deployment gives them their own secrets all the same.
type Keys []unsubscribe.Key

// ParseKeys reads the CLICK_KEYS value, "kid:secret,kid:secret" (the first
// signs). Errors name the entry, never the secret.
func ParseKeys(s string) (Keys, error) {
	ks, err := unsubscribe.ParseKeys(s)
	if err != nil {
		return nil, err
	}
	return Keys(ks), nil
}

// Link is what a token carries: the notification and where its product is.
type Link struct {
	UserID, SKU, Region, Channel string
	Episode                      int64
	// URL is the product page the click is redirected to (http or https).
	URL string
	// Expires is when the link stops working; it is kept to the second.
	Expires time.Time
}

// NotificationID is the id of the notification the link is in.
func (l Link) NotificationID() string {
	return events.NotificationID(l.UserID, l.SKU, l.Region, l.Episode, l.Channel)
}

// check names the first field that cannot go into a token.
func (l Link) check() error {
	if err := events.CheckID("user_id", l.UserID); err != nil {
		return err
	}
	if err := events.CheckID("sku", l.SKU); err != nil {
		return err
	}
	if err := events.CheckRegion("region", l.Region); err != nil {
		return err
	}
	if !events.ValidChannel(l.Channel) {
		return fmt.Errorf("channel: must be one of %s, got %q", strings.Join(events.ChannelNames(), ", "), l.Channel)
	}
	if l.Episode < 1 {
		return fmt.Errorf("episode: must be at least 1, got %d", l.Episode)
	}
	if l.Expires.Unix() < 1 {
		return errors.New("expires: required")
	}
	return events.CheckURL("url", l.URL)
}

// Sign returns l's token, signed with the first key.
func (ks Keys) Sign(l Link) (string, error) {
	if len(ks) == 0 {
		return "", errNoKeys
	}
	if err := l.check(); err != nil {
		return "", fmt.Errorf("sign click token: %w", err)
	}
	k := ks[0]
	parts := []string{version, k.ID, l.UserID, l.SKU, l.Region, l.Channel, strconv.FormatInt(l.Episode, 10),
		strconv.FormatInt(l.Expires.Unix(), 36), base64.RawURLEncoding.EncodeToString([]byte(l.URL))}
	return strings.Join(append(parts, mac(k.Secret, parts)), "."), nil
}

// URL is the tracked link of l on the engagement service at base (its
// public address, e.g. https://e.shop.example).
func (ks Keys) URL(base string, l Link) (string, error) {
	tok, err := ks.Sign(l)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(base, "/") + Path + tok, nil
}

// Claim is what a verified token says.
type Claim struct {
	Link
	KeyID string
}

// Verify checks token at now and returns what it carries. The MAC is
// checked (in constant time) before anything the token says is trusted,
// and the expiry after it, so an expired token is known to be genuine.
func (ks Keys) Verify(token string, now time.Time) (Claim, error) {
	if len(token) > MaxTokenLen {
		return Claim{}, fmt.Errorf("%w: longer than %d bytes", ErrMalformed, MaxTokenLen)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 10 || parts[0] != version {
		return Claim{}, fmt.Errorf("%w: want %s.<kid>.<user>.<sku>.<region>.<channel>.<episode>.<expires>.<url>.<mac>", ErrMalformed, version)
	}
	kid, sig := parts[1], parts[9]
	got, err := base64.RawURLEncoding.Strict().DecodeString(sig)
	if err != nil || len(got) != macLen {
		return Claim{}, fmt.Errorf("%w: the mac is not %d bytes of unpadded base64url", ErrMalformed, macLen)
	}
	i := -1
	for j, k := range ks {
		if k.ID == kid {
			i = j
			break
		}
	}
	if i < 0 {
		return Claim{}, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	want, _ := base64.RawURLEncoding.DecodeString(mac(ks[i].Secret, parts[:9]))
	if !hmac.Equal(got, want) {
		return Claim{}, ErrBadSignature
	}
	// Signed by us, so well-formed unless a key leaked or a signer had a
	// bug; checked all the same, since the URL becomes a Location header.
	episode, err1 := strconv.ParseInt(parts[6], 10, 64)
	expires, err2 := strconv.ParseInt(parts[7], 36, 64)
	u, err3 := base64.RawURLEncoding.Strict().DecodeString(parts[8])
	if err := errors.Join(err1, err2, err3); err != nil {
		return Claim{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	c := Claim{KeyID: kid, Link: Link{UserID: parts[2], SKU: parts[3], Region: parts[4], Channel: parts[5],
		Episode: episode, URL: string(u), Expires: time.Unix(expires, 0).UTC()}}
	if err := c.check(); err != nil {
		return Claim{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !now.Before(c.Expires) {
		return Claim{}, fmt.Errorf("%w at %s", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	return c, nil
}

// mac covers the version and kid too, so a token cannot be replayed under
// another layout or key, nor as an unsubscribe token under a shared
// secret; NUL separates the parts (none may contain one).
func mac(secret []byte, parts []string) string {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte("click"))
	for _, p := range parts {
		h.Write([]byte{0})
		h.Write([]byte(p))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:macLen])
}
