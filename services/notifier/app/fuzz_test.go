package app

import (
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"go.uber.org/zap"

	"backinstock/services/notifier/edgeauth"
	"backinstock/shared/httpapi"
	"backinstock/shared/testenv"
)

// FuzzEdgeToken: whatever body a caller posts to POST /v1/edge/token, the
// answer is a token or a 4xx naming the problem, never a 5xx or a panic.
// POST /v1/edge/revocations reads its body with the same decodeUserID, so
// this covers its input too (its revoker needs a live system account).
func FuzzEdgeToken(f *testing.F) {
	acct, err := nkeys.CreateAccount()
	if err != nil {
		f.Fatal(err)
	}
	seed, err := acct.Seed()
	if err != nil {
		f.Fatal(err)
	}
	issuer, err := edgeauth.NewIssuer(seed)
	if err != nil {
		f.Fatal(err)
	}
	rt := httpapi.NewRouter(httpapi.RouterOptions{Token: "t", Log: zap.NewNop()})
	tokenRoute(rt, Config{EdgeTokenTTL: time.Hour, EdgeWSURL: "ws://127.0.0.1:1"}, issuer)
	for _, s := range []string{
		`{"user_id":"u1"}`, `{"user_id":"a.b"}`, `{"user_id":""}`, `{"user_id":"u1","user_id":"u2"}`,
		`{"user_id":"u1","x":1}`, `{"user_id":1}`, `{}`, `[`, ``, `null`, `{"user_id":"` + string(make([]byte, 5000)) + `"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		testenv.ServeFuzz(t, rt, http.MethodPost, "http://notifier/v1/edge/token", "application/json", "t", body)
	})
}
