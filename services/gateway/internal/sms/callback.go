package sms

import (
	"context"
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio's signature is HMAC-SHA1; not ours to choose.
	"encoding/base64"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"backinstock/services/gateway/internal/receipts"
	"backinstock/shared/httpapi"
	"backinstock/topics/events"
)

// SignatureHeader carries Twilio's request signature.
const SignatureHeader = "X-Twilio-Signature"

// Signature is Twilio's request signature of a POST to fullURL with form
// (https://www.twilio.com/docs/usage/security#validating-requests): the
// URL exactly as Twilio requested it, query included, then every POST
// parameter as name and value, sorted by name, no separators; HMAC-SHA1
// keyed with the account's auth token; base64.
func Signature(authToken, fullURL string, form url.Values) string {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	mac := hmac.New(sha1.New, []byte(authToken))
	_, _ = mac.Write([]byte(fullURL))
	for _, k := range names {
		// A name given twice: its values in order too, as Twilio's own
		// validators do.
		vs := append([]string(nil), form[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			_, _ = mac.Write([]byte(k))
			_, _ = mac.Write([]byte(v))
		}
	}
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// receiptStatus maps the MessageStatus values that report an outcome
// after the send. queued, accepted, sending and sent say what the sent
// receipt already said (the API's 201); they are answered and dropped.
var receiptStatus = map[string]string{
	"delivered":   events.StatusDelivered,
	"undelivered": events.StatusUndelivered,
	"failed":      events.StatusFailed,
}

// knownStatus are the MessageStatus values Twilio documents for outbound
// messages; others are counted as "other" (metric cardinality).
var knownStatus = map[string]bool{
	"queued": true, "accepted": true, "scheduled": true, "sending": true, "sent": true,
	"delivered": true, "undelivered": true, "failed": true, "read": true, "canceled": true,
}

// maxCallbackBody bounds a callback's form (Twilio's are well under 2 KiB).
const maxCallbackBody = 64 << 10

// StatusHandler serves POST StatusPath.
type StatusHandler struct {
	authToken string
	publicURL string
	receipts  *receipts.Writer
	m         *Metrics
	now       func() time.Time
}

// NewStatusHandler verifies callbacks with authToken against URLs under
// publicURL (the StatusCallback the provider gave Twilio: the URL this
// route is reached at from outside, whatever proxies sit between) and
// writes their receipts with w.
func NewStatusHandler(authToken, publicURL string, w *receipts.Writer, m *Metrics) *StatusHandler {
	if m == nil {
		m = NewMetrics(nil, "")
	}
	return &StatusHandler{authToken: authToken, publicURL: publicURL, receipts: w, m: m, now: time.Now}
}

// Serve checks the signature (403 without a valid one: nothing is
// written), then writes the receipt of a final status and answers 204
// once Kafka has it. A repeated callback writes the same event again
// (its id is DeliveryEventID of notification, attempt and status).
func (h *StatusHandler) Serve(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxCallbackBody)
	if err := r.ParseForm(); err != nil {
		h.m.Callbacks.WithLabelValues("", "invalid").Inc()
		return httpapi.BadRequest("cannot read the form: %v", err)
	}
	status := r.PostForm.Get("MessageStatus")
	label := status
	if !knownStatus[label] {
		label = "other"
	}
	// The URL Twilio signed is the one it was given, not the one this
	// process sees behind a proxy: the public base, this path, and the
	// query exactly as received.
	signed := h.publicURL + StatusPath
	if r.URL.RawQuery != "" {
		signed += "?" + r.URL.RawQuery
	}
	got := r.Header.Get(SignatureHeader)
	if got == "" || !hmac.Equal([]byte(got), []byte(Signature(h.authToken, signed, r.PostForm))) {
		h.m.Callbacks.WithLabelValues(label, "forbidden").Inc()
		return httpapi.Errorf(http.StatusForbidden, "forbidden", "missing or invalid %s", SignatureHeader)
	}
	to, ok := receiptStatus[status]
	if !ok {
		h.m.Callbacks.WithLabelValues(label, "ignored").Inc()
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	n, attempt, err := notificationOf(r.URL.Query())
	if err != nil {
		// Signed, so sent by us: a URL from another version of the gateway.
		h.m.Callbacks.WithLabelValues(label, "invalid").Inc()
		return err
	}
	reason := ""
	if to != events.StatusDelivered {
		reason = "twilio reported " + status
		if code := r.PostForm.Get("ErrorCode"); code != "" {
			reason += ", error " + code + " (https://www.twilio.com/docs/errors/" + url.PathEscape(code) + ")"
		}
		if msg := r.PostForm.Get("ErrorMessage"); msg != "" {
			reason += ": " + msg
		}
	}
	rec := receipts.Status(n, to, ProviderName, r.PostForm.Get("MessageSid"), attempt, reason, h.now())
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	if err := h.receipts.Write(ctx, rec, r.Header.Get(events.HeaderTraceparent)); err != nil {
		h.m.Callbacks.WithLabelValues(label, "error").Inc()
		// Twilio does not retry a failed callback by default; a 503 at
		// least shows in its debugger and in our metrics.
		return httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "the receipt could not be written: %v", err)
	}
	h.m.Callbacks.WithLabelValues(label, "receipt").Inc()
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// notificationOf reads back what CallbackURL put in the query.
func notificationOf(q url.Values) (events.Notification, int, error) {
	n := events.Notification{
		NotificationID: q.Get("n"), UserID: q.Get("u"), SKU: q.Get("s"), Region: q.Get("r"), Channel: events.ChannelSMS,
	}
	var bad []string
	for _, e := range []error{
		events.CheckID("n", n.NotificationID), events.CheckID("u", n.UserID), events.CheckID("s", n.SKU), events.CheckRegion("r", n.Region),
	} {
		if e != nil {
			bad = append(bad, e.Error())
		}
	}
	attempt, err := strconv.Atoi(q.Get("a"))
	if err != nil || attempt < 1 || attempt > events.MaxAttempt {
		bad = append(bad, "a: not an attempt number")
	}
	if len(bad) > 0 {
		return n, 0, httpapi.BadRequest("callback URL query: %s", strings.Join(bad, "; "))
	}
	return n, attempt, nil
}
