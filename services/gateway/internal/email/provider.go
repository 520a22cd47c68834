package email

import (
	"context"
	"errors"

	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// ProviderName is the provider label of the email channel in metrics and
// delivery receipts.
const ProviderName = "smtp"

// MessageID is the Message-ID (without angle brackets) of the email of
// notificationID: the same notification always carries the same one, so a
// receiving system that de-duplicates by Message-ID (Gmail threads, Mailpit
// with --ignore-duplicate-ids) sees a resend as the same message.
func MessageID(notificationID, domain string) string {
	return notificationID + "@" + domain
}

// Provider is the email channel: render, then send over SMTP.
type Provider struct {
	client    *Client
	templates *render.Set
	domain    string
	unsub     unsubscribeLinks
}

// unsubscribeLinks sign the one-click unsubscribe URL of each email.
type unsubscribeLinks struct {
	keys unsubscribe.Keys
	base string
}

// Option configures a Provider.
type Option func(*Provider)

// WithUnsubscribe gives every email a signed one-click unsubscribe link
// (List-Unsubscribe and List-Unsubscribe-Post, RFC 8058, and the
// templates' .UnsubscribeURL) to the wishlist API at base, scoped to the
// notification's channel, signed with keys' first key. Without it emails
// carry no unsubscribe link.
func WithUnsubscribe(keys unsubscribe.Keys, base string) Option {
	return func(p *Provider) { p.unsub = unsubscribeLinks{keys: keys, base: base} }
}

// NewProvider sends with client the emails templates render; domain is the
// right-hand side of every Message-ID.
func NewProvider(client *Client, templates *render.Set, domain string, opts ...Option) *Provider {
	p := &Provider{client: client, templates: templates, domain: domain}
	for _, o := range opts {
		o(p)
	}
	return p
}

// Name is ProviderName.
func (p *Provider) Name() string { return ProviderName }

// Send delivers n and returns its Message-ID, as the header writes it
// (<…>). A notification without an address, or whose template fails on it,
// is a permanent failure; so is what the server refuses with a 5xx.
func (p *Provider) Send(ctx context.Context, n events.Notification) (string, error) {
	if n.Contact == "" {
		return "", retry.Permanent("no_contact", errors.New("the notification has no email address (contact)"))
	}
	var links render.Links
	if len(p.unsub.keys) > 0 {
		u, err := p.unsub.keys.URL(p.unsub.base, n.UserID, n.Channel)
		if err != nil {
			return "", retry.Permanent("invalid", err)
		}
		links.Unsubscribe = u
	}
	e, err := p.templates.Email(n, links)
	if err != nil {
		return "", retry.Permanent("template", err)
	}
	id := MessageID(n.NotificationID, p.domain)
	err = p.client.Send(ctx, Message{To: n.Contact, Subject: e.Subject, HTML: e.HTML, Text: e.Text, MessageID: id,
		ListUnsubscribe: links.Unsubscribe})
	if err != nil {
		return "", err
	}
	return "<" + id + ">", nil
}
