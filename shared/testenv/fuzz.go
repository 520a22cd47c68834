package testenv

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// ServeFuzz sends one fuzzed request to an API handler (with a bearer
// token when token is set) and fails t unless the answer is a 2xx, a 3xx or
// a 4xx in the JSON error envelope: a 5xx means input reached a store or a
// topic unchecked, a bare 4xx that some path skipped the envelope.
func ServeFuzz(t testing.TB, h http.Handler, method, target, contentType, token, body string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s %q: %d %s", method, target, body, rec.Code, rec.Body)
	}
	if rec.Code >= 400 && !strings.Contains(rec.Body.String(), `"message"`) {
		t.Fatalf("%s %s %q: %d without the error envelope: %s", method, target, body, rec.Code, rec.Body)
	}
}
