// Package httpapi is the HTTP side every service shares, in one place: the
// listener with /healthz, /readyz, /metrics and graceful shutdown (Server);
// the router that applies bearer-token authentication and per-route metrics
// (Router); bounded strict JSON decoding; and one error body shape,
// {"error": {"code": "...", "message": "..."}}.
package httpapi

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"backinstock/topics/events"
)

// Error is an API error: an HTTP status, a stable machine code and a message
// that names the offending field.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Errorf builds an *Error.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid is the 422 for a well-formed request whose content breaks a rule.
func Invalid(format string, args ...any) *Error {
	return Errorf(http.StatusUnprocessableEntity, "invalid", format, args...)
}

// BadRequest is the 400 for a request that cannot be read.
func BadRequest(format string, args ...any) *Error {
	return Errorf(http.StatusBadRequest, "bad_request", format, args...)
}

// WriteJSON writes v with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err as the error body; errors that are not *Error become 500s
// whose message does not leak internals.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = Errorf(http.StatusInternalServerError, "internal", "internal error")
	}
	WriteJSON(w, e.Status, map[string]*Error{"error": e})
}

// Decode reads exactly one JSON value of at most maxBytes into dst, rejecting
// unknown fields, keys in another case than the field's and duplicate keys
// (events.CheckKeys), so a misspelled or repeated field is an error rather
// than a silent default or a silent last-wins.
func Decode(w http.ResponseWriter, r *http.Request, maxBytes int64, dst any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "content-type must be application/json, got %q", ct)
	}
	body, err := LimitBody(w, r, maxBytes)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(body)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return decodeError(err, maxBytes)
	}
	if err := decodeValue(raw, dst); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return decodeError(err, maxBytes)
		}
		return BadRequest("body must hold a single JSON value")
	}
	return nil
}

// decodeValue decodes the value Decode has read; the key check needs it
// whole, before encoding/json's last-wins and case-folding lose the evidence.
func decodeValue(data []byte, dst any) error {
	if keys := events.CheckKeys(data, reflect.TypeOf(dst)); len(keys) > 0 {
		msgs := make([]string, len(keys))
		for i, k := range keys {
			msgs[i] = k.Error()
		}
		return BadRequest("%s", strings.Join(msgs, "; "))
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, 0) // data is within the limit already
	}
	return nil
}

// TooLarge is the 413 for a body over maxBytes.
func TooLarge(maxBytes int64) *Error {
	return Errorf(http.StatusRequestEntityTooLarge, "too_large", "body exceeds %d bytes", maxBytes)
}

// LimitBody is r's body bounded to maxBytes (reading past it fails with an
// *http.MaxBytesError). A declared Content-Length over the limit is the 413
// at once, before a byte is read: a client that sent "Expect: 100-continue"
// then gets the answer instead of "100 Continue" and never sends the body,
// where answering after reading part of it made net/http close the
// connection under the client's unsent body, which the client saw as a
// reset more often than as the 413.
func LimitBody(w http.ResponseWriter, r *http.Request, maxBytes int64) (io.Reader, error) {
	if r.ContentLength > maxBytes {
		return nil, TooLarge(maxBytes)
	}
	return http.MaxBytesReader(serverWriter(w), r.Body, maxBytes), nil
}

// serverWriter is the ResponseWriter net/http made, under wrappers such as
// the router's status recorder. http.MaxBytesReader tells the server that a
// body (one sent without a length) ran over the limit only through that
// writer; told, the server closes the connection with a FIN and a pause
// that let the client read the 413, not with an immediate reset.
func serverWriter(w http.ResponseWriter) http.ResponseWriter {
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return w
		}
		w = u.Unwrap()
	}
}

func decodeError(err error, maxBytes int64) error {
	var (
		mbe *http.MaxBytesError
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return TooLarge(maxBytes)
	case errors.As(err, &syn):
		return BadRequest("malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		return BadRequest("field %q: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
	case errors.Is(err, io.EOF):
		return BadRequest("body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return BadRequest("malformed JSON: unexpected end of body")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return BadRequest("unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
	default:
		return BadRequest("malformed JSON: %v", err)
	}
}

// BearerAuth rejects requests whose Authorization header is not "Bearer token".
// The comparison is constant-time so the token cannot be guessed by timing.
func BearerAuth(token string, next http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := r.Header.Get("Authorization")
		if got == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="backinstock"`)
			WriteError(w, Errorf(http.StatusUnauthorized, "unauthorized", "missing Authorization: Bearer token"))
			return
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="backinstock", error="invalid_token"`)
			WriteError(w, Errorf(http.StatusUnauthorized, "unauthorized", "invalid token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}
