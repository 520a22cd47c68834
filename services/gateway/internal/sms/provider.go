// Package sms is the gateway's sms channel through Twilio's Messages API
// (or any service of its shape): one form-encoded POST per notification
// with the notification id as the Idempotency-Key, Twilio's error codes
// sorted into permanent and transient, and the status callback route that
// turns Twilio's later reports (delivered, undelivered, failed) into
// receipts, verifying Twilio's request signature first.
package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/gateway/internal/delivery"
	"backinstock/services/gateway/internal/httpsend"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/topics/events"
)

// ProviderName is the provider label of the sms channel in metrics, rate
// limits and receipts.
const ProviderName = "twilio"

// StatusPath is the gateway's route for Twilio's status callbacks.
const StatusPath = "/v1/sms/status"

// permanentCodes are the Twilio error codes of a 400 that name the
// recipient as the problem: sending again cannot help.
var permanentCodes = map[int]string{
	21211: "invalid 'To' number",
	21610: "the recipient replied STOP (unsubscribed)",
	21614: "'To' is not a mobile number",
}

// Metrics are the sms channel's own.
type Metrics struct {
	// Segments counts the SMS segments Twilio accepted, by encoding: what
	// the carriers bill.
	Segments  *prometheus.CounterVec
	Callbacks *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil:
// unregistered).
func NewMetrics(reg prometheus.Registerer, region string) *Metrics {
	cl := prometheus.Labels{"region": region}
	m := &Metrics{
		Segments: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_gateway_sms_segments_total", ConstLabels: cl,
			Help: "SMS segments the provider accepted, by encoding (GSM-7: 160 characters, 153 when concatenated; UCS-2: 70, 67)."}, []string{"encoding"}),
		Callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_gateway_sms_callbacks_total", ConstLabels: cl,
			Help: "Twilio status callbacks by MessageStatus and outcome (receipt, ignored, forbidden, invalid, error)."}, []string{"status", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.Segments, m.Callbacks)
	}
	return m
}

// Provider sends a notification's rendered text through the Messages API.
type Provider struct {
	cfg       Config
	client    *http.Client
	templates *render.Set
	endpoint  string
	user      string
	pass      string
	m         *Metrics
	log       *zap.Logger
}

// NewProvider builds the provider; cfg has been validated. m and log may
// be nil.
func NewProvider(cfg Config, templates *render.Set, m *Metrics, log *zap.Logger) *Provider {
	if m == nil {
		m = NewMetrics(nil, "")
	}
	if log == nil {
		log = zap.NewNop()
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// One connection per worker stays open between sends.
	tr.MaxIdleConnsPerHost = max(cfg.Conns, 2)
	user, pass := cfg.AccountSID, cfg.AuthToken
	if cfg.APIKeySID != "" {
		user, pass = cfg.APIKeySID, cfg.APIKeySecret
	}
	return &Provider{
		cfg: cfg, client: &http.Client{Transport: tr, Timeout: cfg.Timeout}, templates: templates,
		endpoint: strings.TrimSuffix(cfg.BaseURL, "/") + "/2010-04-01/Accounts/" + url.PathEscape(cfg.AccountSID) + "/Messages.json",
		user:     user, pass: pass, m: m, log: log,
	}
}

// Close closes the idle connections.
func (p *Provider) Close() { p.client.CloseIdleConnections() }

// Name is ProviderName.
func (p *Provider) Name() string { return ProviderName }

// Send renders n's text and posts it; it returns Twilio's message SID. A
// missing or malformed number and a text that does not render are
// permanent before any call; so are Twilio's answers that blame the
// recipient; 429 and 5xx are transient, Retry-After honoured (package
// httpsend).
func (p *Provider) Send(ctx context.Context, n events.Notification) (string, error) {
	switch {
	case n.Contact == "":
		return "", retry.Permanent("no_contact", errors.New("the notification has no phone number (contact)"))
	case !phoneRE.MatchString(n.Contact):
		return "", retry.Permanent("bad_address", fmt.Errorf("contact %q is not an E.164 phone number", n.Contact))
	}
	text, err := p.templates.SMS(n, render.Links{})
	if err != nil {
		return "", retry.Permanent("template", err)
	}
	form := url.Values{"To": {n.Contact}, "Body": {text.Text}}
	if p.cfg.From != "" {
		form.Set("From", p.cfg.From)
	} else {
		form.Set("MessagingServiceSid", p.cfg.MessagingServiceSID)
	}
	if p.cfg.PublicURL != "" {
		form.Set("StatusCallback", CallbackURL(p.cfg.PublicURL, n, delivery.AttemptOf(ctx)))
	}
	req, err := http.NewRequest(http.MethodPost, p.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", retry.Permanent("invalid", err)
	}
	req.SetBasicAuth(p.user, p.pass)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// Twilio's retries of one request, and ours after a lost answer, are
	// then one message at a provider that honours it.
	req.Header.Set(httpsend.IdempotencyKeyHeader, n.NotificationID)

	resp, err := httpsend.Do(ctx, p.client, req)
	if err != nil {
		return "", err
	}
	if err := p.classify(resp); err != nil {
		return "", err
	}
	var ok struct {
		SID         string `json:"sid"`
		NumSegments string `json:"num_segments"`
	}
	if err := json.Unmarshal(resp.Body, &ok); err != nil || ok.SID == "" {
		// Accepted all the same: sending again would send twice.
		p.log.Warn("twilio accepted a message without a readable sid", zap.String("notification_id", n.NotificationID), zap.Int("status", resp.Status))
	}
	p.m.Segments.WithLabelValues(text.Encoding).Add(float64(text.Segments))
	p.log.Debug("sms accepted", zap.String("notification_id", n.NotificationID), zap.String("sid", ok.SID),
		zap.String("encoding", text.Encoding), zap.Int("segments", text.Segments), zap.String("twilio_segments", ok.NumSegments))
	return ok.SID, nil
}

// twilioError is the body of Twilio's error answers.
type twilioError struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
}

// classify sorts an answer: a 400 whose Twilio code blames the recipient
// is permanent under its own code (twilio_21211); our own credentials
// refused (401, 403: a rotated auth token, a suspended account) is
// transient, twilio_auth, so the work waits in the stream for the fix
// instead of failing every notification (as FCM and SMTP AUTH do);
// everything else as httpsend classifies HTTP answers.
func (p *Provider) classify(r httpsend.Response) error {
	if r.Status >= 200 && r.Status < 300 {
		return nil
	}
	var te twilioError
	if json.Unmarshal(r.Body, &te) == nil && te.Code != 0 && r.Status == http.StatusBadRequest {
		if what, ok := permanentCodes[te.Code]; ok {
			return retry.Permanent("twilio_"+strconv.Itoa(te.Code),
				fmt.Errorf("twilio refused the message, %s: %d %s (%s)", what, te.Code, te.Message, te.MoreInfo))
		}
	}
	if r.Status == http.StatusUnauthorized || r.Status == http.StatusForbidden {
		return retry.Transient(ProviderName+"_auth", fmt.Errorf("twilio refused our credentials: %w", r.Err(ProviderName)))
	}
	return httpsend.Classify(ProviderName, r, time.Now())
}

// CallbackURL is the StatusCallback of n's message: the public route with
// what the receipt needs in its query (notification, user, sku, region,
// attempt). Twilio signs the whole URL, so the query is as trustworthy as
// the form.
func CallbackURL(publicURL string, n events.Notification, attempt int) string {
	q := url.Values{
		"n": {n.NotificationID}, "u": {n.UserID}, "s": {n.SKU}, "r": {n.Region}, "a": {strconv.Itoa(attempt)},
	}
	return publicURL + StatusPath + "?" + q.Encode()
}
