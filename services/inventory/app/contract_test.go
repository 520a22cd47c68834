package app_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"backinstock/shared/testenv"
)

// TestContractCatchesDrift: the contract check the API tests run under
// (testenv.Contract over this service's OpenAPI document) fails a handler
// that drifts from the document. The handlers here are test doubles of
// GET and PUT /v1/stock/{sku}, one faithful, the others not.
func TestContractCatchesDrift(t *testing.T) {
	const level = `{"sku":"tee","region":"eu-west-1","quantity":3,"episode":1}`
	tests := []struct {
		name, method, body string
		status             int
		answer             string
		want               string // in the error; "" = no violation
	}{
		{"faithful", "GET", "", 200, level, ""},
		{"undeclared field", "GET", "", 200, `{"sku":"tee","region":"eu-west-1","quantity":3,"episode":1,"warehouse":"b7"}`, "warehouse"},
		{"missing required field", "GET", "", 200, `{"sku":"tee","region":"eu-west-1","quantity":3}`, "episode"},
		{"wrong type", "GET", "", 200, `{"sku":"tee","region":"eu-west-1","quantity":"3","episode":1}`, "quantity"},
		{"undocumented status", "GET", "", 418, `{"error":{"code":"teapot","message":"no"}}`, "418"},
		{"forbidden request accepted", "PUT", `{"region":"eu-west-1","quantity":-1}`, 200, `{"sku":"tee","region":"eu-west-1","quantity":-1,"previous_quantity":0,"episode":0,"restock":false}`, "forbids"},
		{"forbidden request refused", "PUT", `{"region":"eu-west-1","quantity":-1}`, 422, `{"error":{"code":"invalid","message":"quantity: must be ≥ 0"}}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			double := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.answer)
			}))
			defer double.Close()
			c := &http.Client{Transport: &testenv.Contract{Doc: "../openapi.yaml"}}
			req, _ := http.NewRequest(tt.method, double.URL+"/v1/stock/tee?region=eu-west-1", strings.NewReader(tt.body))
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := c.Do(req)
			if resp != nil {
				resp.Body.Close()
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("faithful answer refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want a contract violation naming %q", err, tt.want)
			}
		})
	}
}
