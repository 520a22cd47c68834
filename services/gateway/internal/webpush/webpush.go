// Package webpush is the web channel's provider: Web Push (RFC 8030) to
// the browser subscriptions of a user, the payload encrypted for the
// browser (RFC 8291, aes128gcm) and the request signed with the
// application server's VAPID key (RFC 8292: Authorization: vapid t=<ES256
// JWT>, k=<public key>). github.com/SherClockHolmes/webpush-go builds the
// request (both RFCs as written; it pads every record to 4,096 bytes, so
// the push service learns nothing from the length); httpsend sends it and
// reads the answer like every HTTP provider's.
//
// Push services keep no idempotency key: a resend is a second message.
// The Topic header (push.Topic, per product) makes the push service
// replace a message the browser has not fetched yet with the newer one,
// so a resend after a crash shows once on a browser that was offline.
package webpush

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	wp "github.com/SherClockHolmes/webpush-go"

	"backinstock/services/gateway/internal/httpsend"
	"backinstock/services/gateway/internal/push"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/shared/config"
	"backinstock/topics/events"
)

// ProviderName is the provider label of the web channel.
const ProviderName = "webpush"

// Urgencies are RFC 8030's Urgency values.
var Urgencies = []string{"very-low", "low", "normal", "high"}

// Config is the Web Push provider's configuration.
type Config struct {
	// PublicKey and PrivateKey are the VAPID key pair (VAPID_PUBLIC_KEY:
	// the uncompressed P-256 point, 65 bytes; VAPID_PRIVATE_KEY: the 32-byte
	// scalar; both base64url). The storefront subscribes browsers with the
	// public key as applicationServerKey.
	PublicKey, PrivateKey string
	// Subject is the VAPID contact (VAPID_SUBJECT): mailto: or https:.
	Subject string
	// TTL is how long a push service keeps a message for an offline
	// browser (WEBPUSH_TTL).
	TTL time.Duration
	// Urgency is RFC 8030's Urgency header (WEBPUSH_URGENCY).
	Urgency string
	// Timeout bounds one call.
	Timeout time.Duration
}

// Validate names what is wrong, by env variable.
func (c Config) Validate(ackWait time.Duration) error {
	var p config.Problems
	if _, err := c.keys(); err != nil {
		p.Addf("VAPID_PRIVATE_KEY", "%v (gateway vapid-keys makes a pair)", err)
	}
	if !strings.HasPrefix(c.Subject, "mailto:") && !strings.HasPrefix(c.Subject, "https://") {
		p.Addf("VAPID_SUBJECT", "%q is not a mailto: or https: contact (RFC 8292 2.1), such as mailto:push@shop.example", c.Subject)
	}
	if c.TTL < 0 || c.TTL > 28*24*time.Hour {
		p.Addf("WEBPUSH_TTL", "%s is not between 0 and 28 days", c.TTL)
	}
	if !slices.Contains(Urgencies, c.Urgency) {
		p.Addf("WEBPUSH_URGENCY", "%q is not one of %v", c.Urgency, Urgencies)
	}
	if c.Timeout <= 0 {
		p.Addf("WEBPUSH_TIMEOUT", "must be positive, got %s", c.Timeout)
	} else if ackWait > 0 && c.Timeout >= ackWait {
		p.Addf("WEBPUSH_TIMEOUT", "%s is not below GATEWAY_ACK_WAIT %s", c.Timeout, ackWait)
	}
	return p.Err()
}

// keys checks the pair: both decode, and the public key is the private
// key's (a mismatch would be refused by every push service).
func (c Config) keys() (*ecdh.PrivateKey, error) {
	if c.PrivateKey == "" || c.PublicKey == "" {
		return nil, errors.New("VAPID_PRIVATE_KEY and VAPID_PUBLIC_KEY are required for web=webpush")
	}
	priv, err := decodeKey(c.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("not base64url: %w", err)
	}
	k, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("not a P-256 private key: %w", err)
	}
	pub, err := decodeKey(c.PublicKey)
	if err != nil || !bytes.Equal(pub, k.PublicKey().Bytes()) {
		return nil, errors.New("VAPID_PUBLIC_KEY is not the public key of VAPID_PRIVATE_KEY")
	}
	return k, nil
}

// decodeKey reads base64url with or without padding.
func decodeKey(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// GenerateKeys makes a VAPID key pair, base64url without padding.
func GenerateKeys() (publicKey, privateKey string, err error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return "", "", err
	}
	return base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), base64.RawURLEncoding.EncodeToString(k.Bytes()), nil
}

// Sender sends to push services.
type Sender struct {
	client *http.Client
	c      Config
	// subscriber is VAPID_SUBJECT as webpush-go wants it: it prefixes
	// "mailto:" to anything not https:, so a mailto: subject goes without.
	subscriber string
}

// NewSender builds the sender; c must be valid.
func NewSender(c Config) *Sender {
	return &Sender{client: &http.Client{Timeout: c.Timeout}, c: c, subscriber: strings.TrimPrefix(c.Subject, "mailto:")}
}

// Name is ProviderName.
func (s *Sender) Name() string { return ProviderName }

// Payload is what the service worker receives (event.data.json()) and
// shows: showNotification(title, {body, image, data: {url,
// notification_id}}), opening url on a click.
type Payload struct {
	Title          string `json:"title"`
	Body           string `json:"body"`
	URL            string `json:"url"`
	Image          string `json:"image,omitempty"`
	NotificationID string `json:"notification_id"`
}

// built captures the request webpush-go makes instead of sending it, so
// httpsend sends it.
type built struct{ req *http.Request }

func (b *built) Do(req *http.Request) (*http.Response, error) {
	b.req = req
	return &http.Response{StatusCode: http.StatusCreated, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}, nil
}

// Send pushes msg to the subscription and returns the push service's
// message URL (Location).
func (s *Sender) Send(ctx context.Context, n events.Notification, d events.Device, msg render.Push) (string, error) {
	if d.Kind != events.DeviceWebPush || d.Endpoint == "" {
		return "", retry.Permanent("invalid", fmt.Errorf("device %s is not a webpush subscription", d.ID))
	}
	payload, err := json.Marshal(Payload{Title: msg.Title, Body: msg.Body, URL: msg.URL, Image: msg.ImageURL, NotificationID: n.NotificationID})
	if err != nil {
		return "", retry.Permanent("invalid", err)
	}
	var b built
	resp, err := wp.SendNotificationWithContext(ctx, payload,
		&wp.Subscription{Endpoint: d.Endpoint, Keys: wp.Keys{Auth: d.Auth, P256dh: d.P256dh}},
		&wp.Options{
			HTTPClient: &b, Subscriber: s.subscriber, Topic: push.Topic(n), TTL: int(s.c.TTL / time.Second),
			Urgency: wp.Urgency(s.c.Urgency), VAPIDPublicKey: s.c.PublicKey, VAPIDPrivateKey: s.c.PrivateKey,
		})
	if err != nil {
		if errors.Is(err, wp.ErrMaxPadExceeded) {
			return "", retry.Permanent("payload_too_large", fmt.Errorf("push of %d bytes: %w", len(payload), err))
		}
		// A key that is no P-256 point: the subscription can never work.
		return "", push.Gone(retry.Permanent("bad_subscription", fmt.Errorf("subscription %s: %w", d.ID, err)))
	}
	_ = resp.Body.Close()
	r, err := httpsend.Do(ctx, s.client, b.req)
	if err != nil {
		return "", err
	}
	switch {
	case r.Status/100 == 2:
		return r.Header.Get("Location"), nil
	case r.Status == http.StatusNotFound, r.Status == http.StatusGone:
		// RFC 8030 7.3: the subscription expired or was unsubscribed.
		return "", push.Gone(retry.Permanent(fmt.Sprintf("webpush_%d", r.Status), r.Err(ProviderName)))
	}
	// 413: too large, permanent; 429 and 5xx transient with Retry-After;
	// other 4xx (a VAPID key the subscription was not made with: 401/403)
	// permanent.
	return "", httpsend.Classify(ProviderName, r, time.Now())
}

var _ push.Sender = (*Sender)(nil)
