package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"backinstock/shared/testenv"
)

// TestOversizeBodyWithExpectContinue: a body over the limit sent with
// "Expect: 100-continue" is answered 413 with the error body every time,
// never a connection reset, whichever way the client sends it.
func TestOversizeBodyWithExpectContinue(t *testing.T) {
	url, _ := freshRedisURL(t)
	cfg := testConfig(t, url, nil)
	cfg.RelayEnabled = false
	cfg.MaxBodyBytes = 2048
	cfg.BulkMaxBytes = 4096
	svc := start(t, cfg)
	put := `{"region":"us-east-1","quantity":1,"product":{"title":"` + strings.Repeat("x", 1<<20) + `"}}`
	bulk := `{"updates":[{"sku":"a","region":"us-east-1","quantity":1,"product":{"title":"` + strings.Repeat("x", 1<<20) + `"}}]}`
	hdr := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	sends := []struct {
		name string
		send func(testenv.ExpectContinueRequest) (testenv.Answer, error)
	}{{"go client", testenv.SendGoClient}, {"raw tcp", testenv.SendRawTCP}}
	tests := []struct {
		name, method, path, body string
		chunked                  bool
	}{
		{"put", "PUT", "/v1/stock/" + testenv.Unique(t, "big"), put, false},
		{"bulk", "POST", "/v1/stock", bulk, false},
		{"put chunked", "PUT", "/v1/stock/" + testenv.Unique(t, "big"), put, true},
		{"bulk chunked", "POST", "/v1/stock", bulk, true},
	}
	for _, s := range sends {
		for _, tt := range tests {
			t.Run(s.name+"/"+tt.name, func(t *testing.T) {
				for i := range 20 {
					a, err := s.send(testenv.ExpectContinueRequest{URL: svc.URL + tt.path, Method: tt.method, Header: hdr, Body: []byte(tt.body), Chunked: tt.chunked})
					if err != nil {
						t.Fatalf("try %d: %v", i, err)
					}
					var e struct {
						Error struct{ Code, Message string } `json:"error"`
					}
					if a.Status != http.StatusRequestEntityTooLarge || json.Unmarshal(a.Body, &e) != nil || e.Error.Code != "too_large" {
						t.Fatalf("try %d: %d %s; want 413 too_large", i, a.Status, a.Body)
					}
				}
			})
		}
	}
}
