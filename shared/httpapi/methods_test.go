package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"

	"backinstock/shared/httpapi"
)

// TestWrongMethodIs405Everywhere: a path that exists under another method
// answers 405 with Allow and the JSON envelope, on a router (behind its
// token, like the 404) and on the server's built-in paths, with or without
// an app behind them.
func TestWrongMethodIs405Everywhere(t *testing.T) {
	rt, _ := newRouter(t)
	rt.Handle("PUT /private", "private_put", func(w http.ResponseWriter, _ *http.Request) error {
		w.WriteHeader(http.StatusNoContent)
		return nil
	})
	withApp := httpapi.NewServer("127.0.0.1:0", zap.NewNop(), nil, rt)
	bare := httpapi.NewServer("127.0.0.1:0", zap.NewNop(), nil, nil)
	serve(t, withApp)
	serve(t, bare)

	tests := []struct {
		name, base, method, path, auth string
		status                         int
		allow                          string
	}{
		{"router route, wrong method", withApp.Addr(), http.MethodDelete, "/private", "Bearer s3cret", 405, "GET, HEAD, PUT"},
		{"router 405 needs the token", withApp.Addr(), http.MethodDelete, "/private", "", 401, ""},
		{"public route, wrong method", withApp.Addr(), http.MethodPost, "/public", "Bearer s3cret", 405, "GET, HEAD"},
		{"built-in path under an app", withApp.Addr(), http.MethodPost, "/healthz", "", 405, "GET, HEAD"},
		{"built-in path, no app", bare.Addr(), http.MethodPost, "/readyz", "", 405, "GET, HEAD"},
		{"unknown path, no app", bare.Addr(), http.MethodPost, "/nope", "", 404, ""},
		{"unknown path under an app", withApp.Addr(), http.MethodPost, "/nope", "Bearer s3cret", 404, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, "http://"+tt.base+tt.path, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status || resp.Header.Get("Allow") != tt.allow {
				t.Fatalf("%d Allow %q %s; want %d Allow %q", resp.StatusCode, resp.Header.Get("Allow"), body, tt.status, tt.allow)
			}
			var env struct {
				Error httpapi.Error `json:"error"`
			}
			if err := json.Unmarshal(body, &env); err != nil || env.Error.Code == "" {
				t.Fatalf("body %q is not the JSON error envelope (%v)", body, err)
			}
			if tt.status == 405 && (env.Error.Code != "method_not_allowed" || !strings.Contains(env.Error.Message, tt.path)) {
				t.Fatalf("405 envelope %+v", env.Error)
			}
		})
	}
}

// A router used without a server answers the same.
func TestRouterAloneAnswers405(t *testing.T) {
	rt, _ := newRouter(t)
	req := httptest.NewRequest(http.MethodPatch, "/private", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	rec := httptest.NewRecorder()
	rt.ServeHTTP(rec, req)
	if rec.Code != 405 || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Fatalf("%d Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}
