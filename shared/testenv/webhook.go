package testenv

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"backinstock/topics/events"
)

// WebhookReceiver is a shop's webhook endpoint that checks what a careful
// receiver of the Standard Webhooks spec checks, with the spec's reference
// library: a POST of JSON, the webhook-id, webhook-timestamp and
// webhook-signature headers, a v1 signature made with its secret among the
// space-separated ones (HMAC-SHA256 of id.timestamp.body), a timestamp
// within 5 minutes of now; and, for our contract, Idempotency-Key equal to
// webhook-id and a body that decodes strictly as the WebhookEvent whose
// notification id is the webhook-id. A request that fails a check is
// answered 400 and kept in Rejected; an accepted one is recorded per
// webhook-id (a duplicate is answered 2xx, as a de-duplicating receiver
// does, and counted). Scripted answers (Answer, AnswerID) stand for an
// endpoint that is down, limited or gone.
//
// It serves the gateway's component tests, its benchmark and the e2e
// scenario, which live in different modules; hence here and not in the
// gateway.
type WebhookReceiver struct {
	// URL is the endpoint (http://127.0.0.1:port/hooks).
	URL string

	srv      *httptest.Server
	verifier *standardwebhooks.Webhook

	mu       sync.Mutex
	events   map[string]events.WebhookEvent
	count    map[string]int
	arrived  map[string]time.Time
	order    []string
	rejected []string
	total    int
	answers  []webhookAnswer
	byID     map[string]int
}

type webhookAnswer struct {
	status     int
	retryAfter string
}

// NewWebhookReceiver starts a receiver verifying with secret (whsec_…) and
// stops it when the test ends.
func NewWebhookReceiver(tb testing.TB, secret string) *WebhookReceiver {
	tb.Helper()
	r, err := StartWebhookReceiver(secret)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(r.Close)
	return r
}

// StartWebhookReceiver starts a receiver verifying with secret (whsec_…)
// on a free 127.0.0.1 port.
func StartWebhookReceiver(secret string) (*WebhookReceiver, error) {
	v, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		return nil, fmt.Errorf("webhook receiver secret: %w", err)
	}
	r := &WebhookReceiver{verifier: v, events: map[string]events.WebhookEvent{}, count: map[string]int{}, arrived: map[string]time.Time{}, byID: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL + "/hooks"
	return r, nil
}

// Close stops the server.
func (r *WebhookReceiver) Close() { r.srv.Close() }

// Answer makes the next n requests (after their checks pass) be answered
// with status, with a Retry-After header when retryAfter is not empty;
// nothing is recorded for them. Calls queue up.
func (r *WebhookReceiver) Answer(n, status int, retryAfter string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for range n {
		r.answers = append(r.answers, webhookAnswer{status: status, retryAfter: retryAfter})
	}
}

// AnswerID makes every request for webhook-id id be answered with status
// (410 for an endpoint that no longer wants it); nothing is recorded.
func (r *WebhookReceiver) AnswerID(id string, status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byID[id] = status
}

func (r *WebhookReceiver) serve(w http.ResponseWriter, req *http.Request) {
	at := time.Now()
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err == nil {
		err = r.check(req, body)
	}
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if err != nil {
		r.rejected = append(r.rejected, fmt.Sprintf("%s: %v", id, err))
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if status, ok := r.byID[id]; ok {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if len(r.answers) > 0 {
		a := r.answers[0]
		r.answers = r.answers[1:]
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		http.Error(w, http.StatusText(a.status), a.status)
		return
	}
	if r.count[id] == 0 {
		ev, _ := events.DecodeWebhookEvent(body) // checked above
		r.events[id] = ev
		r.arrived[id] = at
		r.order = append(r.order, id)
	}
	r.count[id]++
	w.WriteHeader(http.StatusNoContent)
}

// check is what the receiver verifies before it looks at the body's
// meaning.
func (r *WebhookReceiver) check(req *http.Request, body []byte) error {
	if req.Method != http.MethodPost {
		return fmt.Errorf("method %s, want POST", req.Method)
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return fmt.Errorf("content-type %q, want application/json", req.Header.Get("Content-Type"))
	}
	// Verify checks the three headers, the timestamp's 5-minute tolerance
	// and the signatures, per the spec.
	if err := r.verifier.Verify(body, req.Header); err != nil {
		return err
	}
	id := req.Header.Get(standardwebhooks.HeaderWebhookID)
	if k := req.Header.Get("Idempotency-Key"); k != id {
		return fmt.Errorf("Idempotency-Key %q, webhook-id %q", k, id)
	}
	ev, err := events.DecodeWebhookEvent(body)
	if err != nil {
		return err
	}
	if ev.Data.NotificationID != id {
		return errors.New("data.notification_id " + strconv.Quote(ev.Data.NotificationID) + " is not the webhook-id " + strconv.Quote(id))
	}
	return nil
}

// Delivered is how many times webhook-id id was accepted.
func (r *WebhookReceiver) Delivered(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count[id]
}

// ArrivedAt is when the first accepted request of id reached the
// receiver (before its body was read).
func (r *WebhookReceiver) ArrivedAt(id string) (time.Time, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.arrived[id]
	return at, ok
}

// Event is the first accepted body of id.
func (r *WebhookReceiver) Event(id string) (events.WebhookEvent, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ev, ok := r.events[id]
	return ev, ok
}

// Events are the accepted bodies, one per webhook-id, in arrival order.
func (r *WebhookReceiver) Events() []events.WebhookEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]events.WebhookEvent, 0, len(r.order))
	for _, id := range r.order {
		out = append(out, r.events[id])
	}
	return out
}

// Counts are the distinct webhook-ids accepted, the accepts beyond the
// first of an id (duplicates), and every request that reached the
// receiver (scripted answers and rejects included).
func (r *WebhookReceiver) Counts() (distinct, duplicates, requests int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.count {
		duplicates += c - 1
	}
	return len(r.count), duplicates, r.total
}

// Rejected lists the requests that failed a check, with why.
func (r *WebhookReceiver) Rejected() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.rejected...)
}
