// Package webhook is the gateway's `webhook` provider, for any channel: it
// POSTs each notification to the shop's own endpoint, for shops that
// deliver through their own systems, signed per the Standard Webhooks spec
// with the spec's reference library. The body is events.WebhookEvent (the
// contract, with its JSON Schema in topics/); webhook-id and
// Idempotency-Key are the notification id, so a receiver de-duplicates a
// resend; webhook-signature carries one v1 signature per configured
// secret, so a secret can be rotated without a window where the shop
// refuses the gateway's requests.
package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"backinstock/services/gateway/internal/httpsend"
	"backinstock/services/gateway/internal/retry"
	"backinstock/shared/config"
	"backinstock/topics/events"
)

// ProviderName is the provider label in metrics, receipts and
// GATEWAY_PROVIDERS.
const ProviderName = "webhook"

// secretPrefix starts every Standard Webhooks signing secret.
const secretPrefix = "whsec_"

// Config configures the provider.
type Config struct {
	// URL is the shop's endpoint (WEBHOOK_URL).
	URL string
	// Secrets are the signing secrets, whsec_<base64 of 24 to 64 bytes>
	// (WEBHOOK_SECRETS); every request is signed with each.
	Secrets []string
	// Timeout bounds one request, connection included (WEBHOOK_TIMEOUT).
	Timeout time.Duration
	// Conns is how many connections to the endpoint are kept open (the
	// gateway's workers: one each).
	Conns int
}

// Validate names each wrong setting by its variable.
func (c Config) Validate() error {
	var p config.Problems
	switch u, err := url.Parse(c.URL); {
	case c.URL == "":
		p.Addf("WEBHOOK_URL", "required for a channel with the webhook provider")
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "":
		p.Addf("WEBHOOK_URL", "%q is not an http(s) URL without fragment", c.URL)
	}
	if len(c.Secrets) == 0 {
		p.Addf("WEBHOOK_SECRETS", "required for a channel with the webhook provider: whsec_<base64 of 24 to 64 random bytes>,...")
	}
	for i, s := range c.Secrets {
		if err := checkSecret(s); err != nil {
			p.Addf("WEBHOOK_SECRETS", "secret %d: %v", i+1, err)
		}
	}
	config.Positive(&p, "WEBHOOK_TIMEOUT", c.Timeout)
	return p.Err()
}

// checkSecret accepts what the spec recommends: the whsec_ prefix, then
// base64 of 24 to 64 bytes. The reference library would take a secret
// without the prefix, or a short one; refusing them here catches a
// truncated or mistyped secret at start instead of at the shop.
func checkSecret(s string) error {
	raw, ok := strings.CutPrefix(s, secretPrefix)
	if !ok {
		return fmt.Errorf("does not start with %s", secretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return fmt.Errorf("is not base64 after %s", secretPrefix)
	}
	if len(key) < 24 || len(key) > 64 {
		return fmt.Errorf("is %d bytes, want 24 to 64", len(key))
	}
	return nil
}

// Provider sends notifications to the shop's endpoint.
type Provider struct {
	url     string
	signers []*standardwebhooks.Webhook
	client  *http.Client
	now     func() time.Time
}

// Option configures a Provider.
type Option func(*Provider)

// WithClock replaces the clock that stamps webhook-timestamp (tests).
func WithClock(now func() time.Time) Option { return func(p *Provider) { p.now = now } }

// New builds the provider; c must be valid.
func New(c Config, opts ...Option) (*Provider, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &Provider{url: c.URL, now: time.Now}
	for _, s := range c.Secrets {
		w, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			return nil, fmt.Errorf("WEBHOOK_SECRETS: %w", err)
		}
		p.signers = append(p.signers, w)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// One kept-alive connection per worker: the default two per host would
	// make every other request pay a new connection (and a TLS handshake).
	tr.MaxIdleConnsPerHost = max(c.Conns, 2)
	tr.MaxIdleConns = tr.MaxIdleConnsPerHost
	p.client = &http.Client{Timeout: c.Timeout, Transport: tr}
	for _, o := range opts {
		o(p)
	}
	return p, nil
}

// Name is ProviderName.
func (p *Provider) Name() string { return ProviderName }

// Close closes the idle connections.
func (p *Provider) Close() { p.client.CloseIdleConnections() }

// Send POSTs n's WebhookEvent, signed. The endpoint's answer is classified
// by httpsend.Classify: 2xx accepted; 408, 429 and 5xx retried (after
// Retry-After where given); 410 Gone and every other 4xx fail the
// notification for good. A webhook has no provider message id: the
// webhook-id is the notification id already in the receipt.
func (p *Provider) Send(ctx context.Context, n events.Notification) (string, error) {
	body, err := events.Encode(events.NewWebhookEvent(n))
	if err != nil {
		return "", retry.Permanent("invalid", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return "", retry.Permanent("invalid", err)
	}
	ts := p.now()
	sigs := make([]string, 0, len(p.signers))
	for _, s := range p.signers {
		sig, err := s.Sign(n.NotificationID, ts, body)
		if err != nil {
			return "", retry.Permanent("invalid", fmt.Errorf("sign: %w", err))
		}
		sigs = append(sigs, sig)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	h.Set(standardwebhooks.HeaderWebhookID, n.NotificationID)
	h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(standardwebhooks.HeaderWebhookSignature, strings.Join(sigs, " "))
	h.Set(httpsend.IdempotencyKeyHeader, n.NotificationID)
	resp, err := httpsend.Do(ctx, p.client, req)
	if err != nil {
		return "", err
	}
	return "", httpsend.Classify(ProviderName, resp, p.now())
}
