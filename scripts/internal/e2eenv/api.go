package e2eenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"backinstock/topics/events"
)

// Client drives the services through their public HTTP APIs only.
type Client struct {
	Inventory string // base URLs
	Wishlist  string
	Token     string
	HTTP      *http.Client
}

// Client returns an API client for the stack's services.
func (s *Stack) Client() *Client {
	return &Client{Inventory: "http://" + s.Inventory.Addr, Wishlist: "http://" + s.Wishlist.Addr, Token: s.Token,
		HTTP: &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

// StockResult is the inventory's answer to a PUT.
type StockResult struct {
	SKU      string `json:"sku"`
	Region   string `json:"region"`
	Quantity int64  `json:"quantity"`
	Previous int64  `json:"previous_quantity"`
	Episode  int64  `json:"episode"`
	Restock  bool   `json:"restock"`
}

// StockUpdate is the body of PUT /v1/stock/{sku}.
type StockUpdate struct {
	Region   string           `json:"region"`
	Quantity int64            `json:"quantity"`
	Product  *events.Product  `json:"product,omitempty"`
	Delivery *events.Delivery `json:"delivery,omitempty"`
}

// APIError is a non-2xx answer.
type APIError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: %d %s", e.Method, e.URL, e.Status, e.Body)
}

func (c *Client) do(ctx context.Context, method, u, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		return &APIError{Method: method, URL: u, Status: resp.StatusCode, Body: string(bytes.TrimSpace(b))}
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %q: %w", method, u, b, err)
		}
	}
	return nil
}

func (c *Client) doJSON(ctx context.Context, method, u string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	return c.do(ctx, method, u, "application/json", body, out)
}

// Send sends one request and returns its status and answer whatever the
// status, for scenarios that judge each answer (a 503, a 404) themselves.
// hdr holds header name, value pairs (an Idempotency-Key).
func (c *Client) Send(ctx context.Context, method, u string, in any, hdr ...string) (int, []byte, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: read answer: %w", method, u, err)
	}
	return resp.StatusCode, bytes.TrimSpace(b), nil
}

// SetStock is PUT /v1/stock/{sku}.
func (c *Client) SetStock(ctx context.Context, sku string, u StockUpdate) (StockResult, error) {
	var res StockResult
	err := c.doJSON(ctx, http.MethodPut, c.Inventory+"/v1/stock/"+url.PathEscape(sku), u, &res)
	return res, err
}

// AddWish is PUT /v1/users/{user}/wishlist/{sku}.
func (c *Client) AddWish(ctx context.Context, user, sku, region string, channels []string) error {
	body := map[string]any{"region": region, "channels": channels}
	return c.doJSON(ctx, http.MethodPut, c.Wishlist+"/v1/users/"+url.PathEscape(user)+"/wishlist/"+url.PathEscape(sku), body, nil)
}

// RemoveWish is DELETE /v1/users/{user}/wishlist/{sku}.
func (c *Client) RemoveWish(ctx context.Context, user, sku string) error {
	return c.doJSON(ctx, http.MethodDelete, c.Wishlist+"/v1/users/"+url.PathEscape(user)+"/wishlist/"+url.PathEscape(sku), nil, nil)
}

// Preferences is the body of PUT /v1/users/{user}/preferences (the fields
// the scenarios use).
type Preferences struct {
	Unsubscribed bool              `json:"unsubscribed,omitempty"`
	OptOut       []string          `json:"opt_out,omitempty"`
	Contacts     map[string]string `json:"contacts,omitempty"`
}

// SetPreferences is PUT /v1/users/{user}/preferences.
func (c *Client) SetPreferences(ctx context.Context, user string, p Preferences) error {
	return c.doJSON(ctx, http.MethodPut, c.Wishlist+"/v1/users/"+url.PathEscape(user)+"/preferences", p, nil)
}

// Wishlisters is GET /v1/skus/{sku}/wishlisters?region=.
func (c *Client) Wishlisters(ctx context.Context, sku, region string) (int64, error) {
	var out map[string]any
	if err := c.doJSON(ctx, http.MethodGet, c.Wishlist+"/v1/skus/"+url.PathEscape(sku)+"/wishlisters?region="+url.QueryEscape(region), nil, &out); err != nil {
		return 0, err
	}
	for _, k := range []string{"count", "wishlisters"} {
		if v, ok := out[k].(float64); ok {
			return int64(v), nil
		}
	}
	return 0, fmt.Errorf("wishlisters of %s: no count in %v", sku, out)
}

// ImportLine is one NDJSON line of the bulk import.
type ImportLine struct {
	UserID   string     `json:"user_id"`
	SKU      string     `json:"sku"`
	Region   string     `json:"region"`
	Channels []string   `json:"channels"`
	At       *time.Time `json:"at,omitempty"`
}

// ImportResult is the answer of the bulk import.
type ImportResult struct {
	Imported int64 `json:"imported"`
	Rejected int64 `json:"rejected"`
	Errors   []any `json:"errors,omitempty"`
}

// Import streams lines to POST /v1/wishlists:import as NDJSON.
func (c *Client) Import(ctx context.Context, lines []ImportLine) (ImportResult, error) {
	pr, pw := io.Pipe()
	go func() {
		enc := json.NewEncoder(pw)
		for i := range lines {
			if err := enc.Encode(&lines[i]); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.Close()
	}()
	var res ImportResult
	err := c.do(ctx, http.MethodPost, c.Wishlist+"/v1/wishlists:import", "application/x-ndjson", pr, &res)
	pr.Close()
	if err == nil && res.Rejected > 0 {
		err = fmt.Errorf("import: %d of %d lines rejected: %v", res.Rejected, len(lines), res.Errors)
	}
	return res, err
}
