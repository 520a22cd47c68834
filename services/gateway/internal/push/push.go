// Package push is what the gateway's two push providers share: FCM for
// the app channel, Web Push for the web channel. A push notification
// carries the user's devices of its channel (events.Notification.Devices);
// the provider renders it once and calls the push service once per
// device, and this package turns those calls into one outcome for the
// delivery protocol:
//
//   - no devices → permanent failure "no_device";
//   - every device answered → sent when at least one accepted (the first
//     accepted device's message id is the receipt's provider message id),
//     else failed with each device's reason;
//   - any device failed transiently → a transient failure, retried later
//     for the devices still missing it.
//
// A device the push service says is gone for good (FCM UNREGISTERED or an
// invalid token, Web Push 404/410) is removed from the user's devices
// through the wishlist API; a failed removal is logged and counted, never
// the notification's failure: the next push finds the device dead again.
//
// Which devices accepted is kept in Redis (store.MarkDeviceSent) as soon
// as each one does, so a retry or a redelivery after a crash sends only to
// the others: once per device, except for a crash between one device's
// accept and its entry (docs/delivery-semantics.md).
package push

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"go.uber.org/zap"

	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/topics/events"
)

// Sender calls one push service for one device.
type Sender interface {
	// Name is the provider's label ("fcm", "webpush").
	Name() string
	// Send delivers msg about n to d and returns the push service's id of
	// the message. Its errors are classified (package retry); one that
	// says the device is gone for good is made with Gone.
	Send(ctx context.Context, n events.Notification, d events.Device, msg render.Push) (messageID string, err error)
}

// Progress remembers, per notification, the devices that already accepted
// it (package store).
type Progress interface {
	SentDevices(ctx context.Context, userID, notificationID string) (map[string]string, error)
	MarkDeviceSent(ctx context.Context, userID, notificationID, deviceID, messageID string) error
}

// Remover deletes a user's dead device and says what it did
// (package devices: removed, kept, gone).
type Remover interface {
	Remove(ctx context.Context, userID string, d events.Device) (string, error)
}

// goneError marks a device the push service no longer knows.
type goneError struct{ error }

func (e goneError) Unwrap() error { return e.error }

// Gone marks err, already classified as permanent, as the push service
// saying the device is gone for good: it is removed from the user's
// devices.
func Gone(err error) error { return goneError{err} }

// IsGone reports whether err says the device is gone for good.
func IsGone(err error) bool {
	var g goneError
	return errors.As(err, &g)
}

// Topic is a short name for what n is about, the same for every
// notification of its product: Web Push's Topic header (RFC 8030 5.4, at
// most 32 characters of the base64url alphabet) and FCM's collapse key.
// A push service holding an undelivered message replaces it with a newer
// one of the same topic: a resend after a crash, or the product's next
// restock, shows once on a device that was offline.
func Topic(n events.Notification) string {
	sum := sha256.Sum256([]byte(n.SKU))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:32]
}

// Options wire a Provider.
type Options struct {
	Templates *render.Set
	Progress  Progress
	Remover   Remover
	Metrics   *Metrics
	Log       *zap.Logger
}

// Provider is a delivery.Provider that pushes to every device of a
// notification through one Sender.
type Provider struct {
	s Sender
	o Options
}

// New builds the provider of s.
func New(s Sender, o Options) *Provider {
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil, "")
	}
	return &Provider{s: s, o: o}
}

// Name is the Sender's name.
func (p *Provider) Name() string { return p.s.Name() }

// Send pushes n to each of its devices that has not accepted it yet.
func (p *Provider) Send(ctx context.Context, n events.Notification) (string, error) {
	if len(n.Devices) == 0 {
		kind := events.DeviceKindOf(n.Channel)
		return "", retry.Permanent("no_device", fmt.Errorf("the user has no %s device registered", kind))
	}
	msg, err := p.o.Templates.Push(n, render.Links{})
	if err != nil {
		return "", retry.Permanent("template", err)
	}
	done, err := p.o.Progress.SentDevices(ctx, n.UserID, n.NotificationID)
	if err != nil {
		return "", retry.Transient("redis", err)
	}
	log := p.o.Log.With(zap.String("notification_id", n.NotificationID), zap.String("provider", p.s.Name()))
	var (
		first     string // message id of the first device, in the notification's order, that has it
		sent      int
		transient error
		problems  []string
		firstCode string
	)
	count := func(outcome string) { p.o.Metrics.Devices.WithLabelValues(n.Channel, p.s.Name(), outcome).Inc() }
	took := func(id string) {
		sent++
		if first == "" {
			first = id
		}
	}
	for _, d := range n.Devices {
		if id, ok := done[d.ID]; ok {
			took(id) // accepted on an earlier attempt
			continue
		}
		id, err := p.s.Send(ctx, n, d, msg)
		permanent, code := retry.Classify(err)
		switch {
		case err == nil:
			count("sent")
			took(id)
			if err := p.o.Progress.MarkDeviceSent(ctx, n.UserID, n.NotificationID, d.ID, id); err != nil {
				// The device has it; only a later retry would send it again.
				p.o.Metrics.ProgressFailures.WithLabelValues(n.Channel).Inc()
				log.Warn("recording a device's accept", zap.String("device", d.ID), zap.Error(err))
			}
			continue
		case IsGone(err):
			count("gone")
			problems = append(problems, fmt.Sprintf("device %s: %v (%s)", d.ID, err, p.remove(ctx, log, n, d)))
		case permanent:
			count("rejected")
			problems = append(problems, fmt.Sprintf("device %s: %v", d.ID, err))
		default:
			count("retried")
			if transient == nil || retry.RetryAfter(err) > retry.RetryAfter(transient) {
				transient = fmt.Errorf("device %s: %w", d.ID, err)
			}
		}
		if firstCode == "" {
			firstCode = code
		}
	}
	if transient != nil {
		// Retried for the devices still missing it; those that have it
		// are skipped then.
		_, code := retry.Classify(transient)
		return "", retry.TransientAfter(code, fmt.Errorf("%d of %d devices have it; %w%s", sent, len(n.Devices), transient, joined(problems)), retry.RetryAfter(transient))
	}
	if sent > 0 {
		if len(problems) > 0 {
			log.Info("pushed to some devices", zap.Int("sent", sent), zap.Int("devices", len(n.Devices)), zap.Strings("others", problems))
		}
		return first, nil
	}
	code := firstCode
	if code == "" {
		code = "device_gone"
	}
	return "", retry.Permanent(code, fmt.Errorf("no device took it: %s", strings.Join(problems, "; ")))
}

// remove deletes a dead device and says how that went, for the reason.
func (p *Provider) remove(ctx context.Context, log *zap.Logger, n events.Notification, d events.Device) string {
	if p.o.Remover == nil {
		return "not removed: no wishlist API configured"
	}
	result, err := p.o.Remover.Remove(ctx, n.UserID, d)
	if err != nil {
		p.o.Metrics.Removals.WithLabelValues(n.Channel, "error").Inc()
		log.Warn("removing a dead device; it is tried again on its next push", zap.String("user_id", n.UserID), zap.String("device", d.ID), zap.Error(err))
		return "removal failed"
	}
	p.o.Metrics.Removals.WithLabelValues(n.Channel, result).Inc()
	log.Info("dead device removed", zap.String("user_id", n.UserID), zap.String("device", d.ID), zap.String("result", result))
	return result
}

func joined(problems []string) string {
	if len(problems) == 0 {
		return ""
	}
	return "; " + strings.Join(problems, "; ")
}
