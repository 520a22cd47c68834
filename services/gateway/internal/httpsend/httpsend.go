// Package httpsend is what every HTTP provider of the gateway shares: one
// request sent and its answer read whole, and the answer classified into
// the retry package's permanent and transient failures the same way for
// all of them (SMS, FCM, Web Push, webhooks).
package httpsend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"backinstock/services/gateway/internal/retry"
)

// IdempotencyKeyHeader carries the notification id on every HTTP provider
// call, so a provider that de-duplicates by it turns a resend after a crash
// (the protocol's one unguarded step) into nothing.
const IdempotencyKeyHeader = "Idempotency-Key"

// maxBody bounds what is read of an answer: providers answer in a few
// hundred bytes, and a misbehaving one must not fill the memory.
const maxBody = 1 << 20

// Response is a provider's answer, its body read and closed.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Do sends req with client and reads the answer. A failure to get one
// (refused, reset, timed out, TLS) is transient, code "connection"; an
// answer of any status is returned as it is, for Classify or the provider.
func Do(ctx context.Context, client *http.Client, req *http.Request) (Response, error) {
	resp, err := client.Do(req.WithContext(ctx))
	if err != nil {
		// The *url.Error repeats the whole URL, query included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Response{}, retry.Transient("connection", fmt.Errorf("%s %s: %w", req.Method, redact(req), err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return Response{}, retry.Transient("connection", fmt.Errorf("%s %s: reading the answer: %w", req.Method, redact(req), err))
	}
	// Drain what is left so the connection can be reused.
	_, _ = io.Copy(io.Discard, resp.Body)
	return Response{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

// Classify says what an answer means for the notification, the codes
// labelled "<provider>_<status>": 2xx is nil; 408, 429 and 5xx are
// transient, honouring Retry-After; any other status is permanent (the
// request itself is wrong, and sending it again changes nothing). now is
// the clock a Retry-After date is read against.
func Classify(provider string, r Response, now time.Time) error {
	code := provider + "_" + strconv.Itoa(r.Status)
	switch {
	case r.Status >= 200 && r.Status < 300:
		return nil
	case r.Status == http.StatusRequestTimeout, r.Status == http.StatusTooManyRequests, r.Status >= 500:
		return retry.TransientAfter(code, r.Err(provider), RetryAfter(r.Header, now))
	default:
		return retry.Permanent(code, r.Err(provider))
	}
}

// Err describes a refused request: the status and the start of the body,
// which is where providers put their reason.
func (r Response) Err(provider string) error {
	body := strings.TrimSpace(string(r.Body))
	if len(body) > 300 {
		body = body[:300]
		for !utf8.ValidString(body) {
			body = body[:len(body)-1]
		}
		body += "…"
	}
	if body == "" {
		return fmt.Errorf("%s answered %d %s", provider, r.Status, http.StatusText(r.Status))
	}
	return fmt.Errorf("%s answered %d %s: %s", provider, r.Status, http.StatusText(r.Status), body)
}

// RetryAfter reads a Retry-After header (RFC 9110 10.2.3): delay-seconds
// or an HTTP date; zero when absent, malformed or in the past.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(min(s, int64(365*24*3600))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// IsStatus reports whether err is an answer of status from Classify.
func IsStatus(err error, provider string, status int) bool {
	var e *retry.Error
	return errors.As(err, &e) && e.Code == provider+"_"+strconv.Itoa(status)
}

// redact is the request's URL without its query, which may hold
// credentials or recipients, for error messages.
func redact(req *http.Request) string {
	u := *req.URL
	u.RawQuery, u.User = "", nil
	return u.String()
}
