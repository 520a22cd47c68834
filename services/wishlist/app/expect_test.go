package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"backinstock/shared/testenv"
)

// TestOversizeImportWithExpectContinue: an import body over its limit sent
// with "Expect: 100-continue" is answered 413 with the error body every
// time, never a connection reset, whichever way the client sends it.
func TestOversizeImportWithExpectContinue(t *testing.T) {
	cfg := baseConfig(t, sharedKafka(t), env.Redis(t).URL())
	cfg.MaxImportBytes = 4096
	base := startServe(t, cfg)
	// Lines that are all rejected, so the part read before the limit writes nothing.
	body := []byte(strings.Repeat(`{"user_id":"u","sku":"s","region":"mars-1","channels":["app"]}`+"\n", 1<<20/64))
	hdr := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/x-ndjson"}}
	sends := []struct {
		name string
		send func(testenv.ExpectContinueRequest) (testenv.Answer, error)
	}{{"go client", testenv.SendGoClient}, {"raw tcp", testenv.SendRawTCP}}
	for _, s := range sends {
		for _, shape := range []struct {
			name    string
			chunked bool
		}{{"length", false}, {"chunked", true}} {
			t.Run(s.name+"/"+shape.name, func(t *testing.T) {
				for i := range 20 {
					a, err := s.send(testenv.ExpectContinueRequest{URL: base + "/v1/wishlists:import", Method: "POST", Header: hdr, Body: body, Chunked: shape.chunked})
					if err != nil {
						t.Fatalf("try %d: %v", i, err)
					}
					var e struct {
						Error struct{ Code, Message string } `json:"error"`
					}
					if a.Status != http.StatusRequestEntityTooLarge || json.Unmarshal(a.Body, &e) != nil || e.Error.Code != "too_large" || !strings.Contains(e.Error.Message, "4096 bytes") {
						t.Fatalf("try %d: %d %s; want 413 too_large naming the limit", i, a.Status, a.Body)
					}
				}
			})
		}
	}
}
