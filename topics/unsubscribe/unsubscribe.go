// Package unsubscribe is the contract of the one-click unsubscribe link
// (RFC 8058): the signed token the gateway puts in an email's
// List-Unsubscribe URL and the wishlist API checks before it changes a
// user's preferences, the keys that sign it, and the URL's path.
//
// The gateway signs and the wishlist verifies, so the token's layout, the
// bytes the MAC covers and the key format are written here and only here:
// a token built one way and checked another fails for every recipient.
//
// A token is
//
//	v1.<kid>.<user_id>.<scope>.<mac>
//
// where kid names the key that signed it (keys rotate: the first key
// signs, every listed key verifies), scope is "all" (every channel) or one
// channel, and mac is the unpadded base64url HMAC-SHA256 of the version,
// kid, user id and scope under that key. Every part is [A-Za-z0-9_-], so
// the token goes into a URL query unescaped. It carries no expiry: an
// unsubscribe link must keep working for as long as the email is read,
// and what it can do (stop notifications) is what the recipient wants.
package unsubscribe

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"backinstock/topics/events"
)

// Path is the wishlist API's route of the link; the token goes in the
// query parameter Param.
const (
	Path  = "/v1/unsubscribe"
	Param = "token"
)

// ScopeAll unsubscribes the user from every channel; any other scope is a
// channel name and opts the user out of that channel only.
const ScopeAll = "all"

// version is the token's first part: a later layout gets a new one.
const version = "v1"

// MinSecretLen is the shortest secret accepted: HMAC-SHA256 keys shorter
// than the hash's 32 bytes weaken it.
const MinSecretLen = 32

// KeyIDPattern is the shape of a key id.
const KeyIDPattern = "[A-Za-z0-9_-]{1,32}"

var kidRE = regexp.MustCompile("^" + KeyIDPattern + "$")

// Errors a Verify may return, wrapped with the detail: the API answers a
// malformed token 400 and a token it cannot trust 403.
var (
	ErrMalformed     = errors.New("malformed unsubscribe token")
	ErrUnknownKey    = errors.New("unsubscribe token signed with an unknown key")
	ErrBadSignature  = errors.New("unsubscribe token signature does not match")
	errNoKeys        = errors.New("no keys")
	scopeDescription = ScopeAll + " or a channel (" + strings.Join(events.ChannelNames(), ", ") + ")"
)

// Key is one signing key.
type Key struct {
	ID     string
	Secret []byte
}

// Keys are the keys in use: the first signs, all verify. A rotation adds
// the new key first and keeps the old ones listed for as long as emails
// signed with them may be read.
type Keys []Key

// ParseKeys reads the UNSUBSCRIBE_KEYS format, "kid:secret,kid:secret"
// (the first signs). Errors name the entry, never the secret.
func ParseKeys(s string) (Keys, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errNoKeys
	}
	var (
		keys Keys
		errs []error
	)
	for i, entry := range strings.Split(s, ",") {
		kid, secret, ok := strings.Cut(strings.TrimSpace(entry), ":")
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("key %d: want kid:secret", i+1))
		case !kidRE.MatchString(kid):
			errs = append(errs, fmt.Errorf("key %d: id %q must match %s", i+1, kid, KeyIDPattern))
		case len(secret) < MinSecretLen:
			errs = append(errs, fmt.Errorf("key %d (%s): secret must be at least %d bytes, got %d", i+1, kid, MinSecretLen, len(secret)))
		case slices.ContainsFunc(keys, func(k Key) bool { return k.ID == kid }):
			errs = append(errs, fmt.Errorf("key %d: id %q listed twice", i+1, kid))
		default:
			keys = append(keys, Key{ID: kid, Secret: []byte(secret)})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

// ValidScope reports whether scope is ScopeAll or a channel.
func ValidScope(scope string) bool { return scope == ScopeAll || events.ValidChannel(scope) }

// Sign returns the token that unsubscribes userID from scope, signed with
// the first key.
func (ks Keys) Sign(userID, scope string) (string, error) {
	if len(ks) == 0 {
		return "", errNoKeys
	}
	if err := events.CheckID("user_id", userID); err != nil {
		return "", fmt.Errorf("sign unsubscribe token: %w", err)
	}
	if !ValidScope(scope) {
		return "", fmt.Errorf("sign unsubscribe token: scope must be %s, got %q", scopeDescription, scope)
	}
	k := ks[0]
	return strings.Join([]string{version, k.ID, userID, scope, mac(k, userID, scope)}, "."), nil
}

// Claim is what a verified token allows.
type Claim struct {
	UserID, Scope, KeyID string
}

// Verify checks token and returns its claim. The MAC is compared in
// constant time.
func (ks Keys) Verify(token string) (Claim, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 5 || parts[0] != version {
		return Claim{}, fmt.Errorf("%w: want %s.<kid>.<user_id>.<scope>.<mac>", ErrMalformed, version)
	}
	kid, userID, scope, sig := parts[1], parts[2], parts[3], parts[4]
	switch {
	case !kidRE.MatchString(kid):
		return Claim{}, fmt.Errorf("%w: key id must match %s", ErrMalformed, KeyIDPattern)
	case !events.ValidID(userID):
		return Claim{}, fmt.Errorf("%w: user id must match %s", ErrMalformed, events.IDPattern)
	case !ValidScope(scope):
		return Claim{}, fmt.Errorf("%w: scope must be %s", ErrMalformed, scopeDescription)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || len(got) != sha256.Size {
		return Claim{}, fmt.Errorf("%w: the mac is not %d bytes of unpadded base64url", ErrMalformed, sha256.Size)
	}
	i := slices.IndexFunc(ks, func(k Key) bool { return k.ID == kid })
	if i < 0 {
		return Claim{}, fmt.Errorf("%w %q", ErrUnknownKey, kid)
	}
	want, _ := base64.RawURLEncoding.DecodeString(mac(ks[i], userID, scope))
	if !hmac.Equal(got, want) {
		return Claim{}, ErrBadSignature
	}
	return Claim{UserID: userID, Scope: scope, KeyID: kid}, nil
}

// URL is the link that unsubscribes userID from scope on the wishlist API
// at base (its public address, e.g. https://shop.example/wishlist).
func (ks Keys) URL(base, userID, scope string) (string, error) {
	tok, err := ks.Sign(userID, scope)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(base, "/") + Path + "?" + Param + "=" + tok, nil
}

// mac covers the version and kid too, so a token cannot be replayed under
// another layout or key; NUL separates the fields (none may contain one).
func mac(k Key, userID, scope string) string {
	h := hmac.New(sha256.New, k.Secret)
	h.Write([]byte(version + "\x00" + k.ID + "\x00" + userID + "\x00" + scope))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}
