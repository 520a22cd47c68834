// Package devices removes a user's dead push devices through the wishlist
// API, where devices are registered: an FCM token the provider answered
// UNREGISTERED, a Web Push subscription its push service answered 404 or
// 410 for. Removing is best effort: a failure is the caller's to log and
// count, never the notification's; the next push to the device finds it
// dead again and removes it then.
package devices

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"backinstock/services/gateway/internal/httpsend"
	"backinstock/shared/config"
	"backinstock/topics/events"
)

// Config is where the wishlist API is and how to reach it.
type Config struct {
	// URL is the wishlist API's base URL (WISHLIST_API_URL).
	URL string
	// Token is its bearer token (WISHLIST_API_TOKEN: the API_TOKEN the
	// wishlist API is run with).
	Token string
	// Timeout bounds one removal.
	Timeout time.Duration
}

// Validate names what is wrong, by env variable.
func (c Config) Validate() error {
	var p config.Problems
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		p.Addf("WISHLIST_API_URL", "%q is not an http(s) base URL such as http://wishlist:8081 (required for the app and web channels: dead devices are removed through it)", c.URL)
	}
	if c.Token == "" {
		p.Addf("WISHLIST_API_TOKEN", "required with WISHLIST_API_URL")
	}
	if c.Timeout <= 0 {
		p.Addf("WISHLIST_API_TIMEOUT", "must be positive, got %s", c.Timeout)
	}
	return p.Err()
}

// Client removes devices.
type Client struct {
	base  string
	token string
	http  *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sends with hc instead of a client with c.Timeout (tests
// hold the requests to the wishlist API's OpenAPI document with it).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// New builds a client; c must be valid.
func New(c Config, opts ...Option) *Client {
	cl := &Client{base: strings.TrimRight(c.URL, "/"), token: c.Token, http: &http.Client{Timeout: c.Timeout}}
	for _, o := range opts {
		o(cl)
	}
	return cl
}

// ErrRefused is a removal the wishlist API answered with an error.
var ErrRefused = errors.New("wishlist API refused the removal")

// What a removal did, for the metrics.
const (
	Removed = "removed" // 204: deleted now, or it was not there
	Gone    = "gone"    // 404: not there (a server that says so)
	Kept    = "kept"    // 412: re-registered with another token since: left alone
)

// Remove deletes the user's device while it still holds the token the
// push service rejected: DELETE events.DeviceRemovalPath (token_sha256 =
// d.TokenSHA256()), and says what happened (Removed, Gone, Kept).
func (c *Client) Remove(ctx context.Context, userID string, d events.Device) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, c.base+events.DeviceRemovalPath(userID, d), nil)
	if err != nil {
		return "", fmt.Errorf("remove device %s of %s: %w", d.ID, userID, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := httpsend.Do(ctx, c.http, req)
	if err != nil {
		return "", fmt.Errorf("remove device %s of %s: %w", d.ID, userID, err)
	}
	switch {
	case resp.Status/100 == 2:
		return Removed, nil
	case resp.Status == http.StatusNotFound:
		return Gone, nil
	case resp.Status == http.StatusPreconditionFailed:
		return Kept, nil
	}
	return "", fmt.Errorf("remove device %s of %s: %w: %w", d.ID, userID, ErrRefused, resp.Err("wishlist"))
}
