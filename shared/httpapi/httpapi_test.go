package httpapi_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"backinstock/shared/httpapi"
)

type body struct {
	Region   string `json:"region"`
	Quantity int64  `json:"quantity"`
}

func handler() http.Handler {
	return httpapi.BearerAuth("s3cret", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b body
		if err := httpapi.Decode(w, r, 64, &b); err != nil {
			httpapi.WriteError(w, err)
			return
		}
		httpapi.WriteJSON(w, http.StatusOK, b)
	}))
}

func TestRequestsAreAuthenticatedAndDecodedStrictly(t *testing.T) {
	tests := []struct {
		name, auth, ctype, body string
		status                  int
		code, msg               string
	}{
		{"ok", "Bearer s3cret", "application/json", `{"region":"eu","quantity":2}`, 200, "", ""},
		{"no token", "", "application/json", `{}`, 401, "unauthorized", "missing"},
		{"wrong token", "Bearer nope", "application/json", `{}`, 401, "unauthorized", "invalid token"},
		{"too large", "Bearer s3cret", "application/json", `{"region":"` + strings.Repeat("x", 100) + `"}`, 413, "too_large", "64 bytes"},
		{"malformed", "Bearer s3cret", "application/json", `{"region":`, 400, "bad_request", "malformed"},
		{"unknown field", "Bearer s3cret", "application/json", `{"regoin":"eu"}`, 400, "bad_request", `"regoin"`},
		{"duplicate key", "Bearer s3cret", "application/json", `{"region":"eu","quantity":0,"quantity":5}`, 400, "bad_request", `duplicate key "quantity"`},
		{"duplicate by escape", "Bearer s3cret", "application/json", `{"region":"eu","\u0072egion":"us"}`, 400, "bad_request", `duplicate key "region"`},
		{"key in another case", "Bearer s3cret", "application/json", `{"Region":"eu"}`, 400, "bad_request", `unknown key "Region" (did you mean "region"?)`},
		{"wrong type", "Bearer s3cret", "application/json", `{"quantity":"five"}`, 400, "bad_request", `"quantity"`},
		{"two values", "Bearer s3cret", "application/json", `{} {}`, 400, "bad_request", "single JSON value"},
		{"empty", "Bearer s3cret", "application/json", ``, 400, "bad_request", "empty"},
		{"not json", "Bearer s3cret", "text/plain", `{}`, 415, "unsupported_media_type", "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPut, "/", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			handler().ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			if tt.code == "" {
				return
			}
			var e struct{ Error httpapi.Error }
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			if e.Error.Code != tt.code || !strings.Contains(e.Error.Message, tt.msg) {
				t.Fatalf("error %+v, want code %s and a message with %q", e.Error, tt.code, tt.msg)
			}
		})
	}
}
