package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/zap"

	"backinstock/shared/httpapi"
	"backinstock/shared/testenv"
)

// TestRefusedBodyWithExpectContinue: a body Decode refuses, sent with
// "Expect: 100-continue" through the Server and the Router, gets its answer
// and the error body every time, never a connection reset: a body over the
// limit with a length (refused before 100 Continue) or chunked (the server
// must learn the limit was hit, through the router's writer, to close with
// FIN and a pause), and a malformed one the handler stops reading early.
func TestRefusedBodyWithExpectContinue(t *testing.T) {
	const limit = 64 << 10
	rt := httpapi.NewRouter(httpapi.RouterOptions{Token: "s3cret"})
	rt.Handle("PUT /v1/thing", "thing", func(w http.ResponseWriter, r *http.Request) error {
		var b body
		if err := httpapi.Decode(w, r, limit, &b); err != nil {
			return err
		}
		httpapi.WriteJSON(w, http.StatusOK, b)
		return nil
	})
	s := httpapi.NewServer("127.0.0.1:0", zap.NewNop(), nil, rt)
	serve(t, s)
	hdr := http.Header{"Authorization": {"Bearer s3cret"}, "Content-Type": {"application/json"}}
	over := `{"region":"` + strings.Repeat("x", 1<<20) + `"}`
	malformed := `{"region":` + strings.Repeat(" ", limit-100) + `]}`
	sends := []struct {
		name string
		send func(testenv.ExpectContinueRequest) (testenv.Answer, error)
	}{{"go client", testenv.SendGoClient}, {"raw tcp", testenv.SendRawTCP}}
	tests := []struct {
		name, body string
		chunked    bool
		status     int
		code       string
	}{
		{"over the limit", over, false, 413, "too_large"},
		{"over the limit chunked", over, true, 413, "too_large"},
		{"malformed", malformed, false, 400, "bad_request"},
		{"malformed chunked", malformed, true, 400, "bad_request"},
	}
	for _, sd := range sends {
		for _, tt := range tests {
			t.Run(sd.name+"/"+tt.name, func(t *testing.T) {
				for i := range 20 {
					a, err := sd.send(testenv.ExpectContinueRequest{URL: "http://" + s.Addr() + "/v1/thing", Method: "PUT", Header: hdr, Body: []byte(tt.body), Chunked: tt.chunked})
					if err != nil {
						t.Fatalf("try %d: %v", i, err)
					}
					var e struct{ Error httpapi.Error }
					if a.Status != tt.status || json.Unmarshal(a.Body, &e) != nil || e.Error.Code != tt.code {
						t.Fatalf("try %d: %d %s; want %d %s", i, a.Status, a.Body, tt.status, tt.code)
					}
				}
			})
		}
	}
}
