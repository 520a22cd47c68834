package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/api"
	"backinstock/services/wishlist/internal/service"
	"backinstock/services/wishlist/internal/store"
	"backinstock/shared/kafka"
	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// The wishlist API's bodies and path parameters are fuzzed against the real
// handler over a real redis-server and Kafka (kfake): whatever a caller
// sends, the answer is a 2xx or a 4xx that names the problem, never a 5xx
// (which would mean input reached the store or the changelog unchecked) or
// a panic. The seeds run in `make test`; `make fuzz` runs each target for
// FUZZTIME.

func fuzzAPI(f *testing.F) http.Handler {
	f.Helper()
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(r.Close)
	rdb, err := redisconn.New(context.Background(), r.URL(), redisconn.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = rdb.Close() })
	k, err := testenv.StartKafka(1, kfake.SeedTopics(1, catalog.WishlistChanges))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(k.Close)
	prod, err := kafka.NewProducer(kafka.Config{Brokers: k.Brokers}, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = prod.Close() })
	svc := &service.Service{Store: store.New(rdb), Producer: prod, Topic: catalog.WishlistChanges, Regions: catalog.DefaultRegions}
	h, err := api.Handler(api.Options{Token: "t", Regions: catalog.DefaultRegions}, svc, api.NewMetrics(nil), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	return h
}

func serveFuzz(t *testing.T, h http.Handler, method, path, contentType, body string) {
	req := httptest.NewRequest(method, "http://wishlist"+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer t")
	req.Header.Set("Content-Type", contentType)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code >= 500 {
		t.Fatalf("%s %s %q: %d %s", method, path, body, rec.Code, rec.Body)
	}
	if rec.Code >= 400 && !strings.Contains(rec.Body.String(), `"message"`) {
		t.Fatalf("%s %s %q: %d without the error envelope: %s", method, path, body, rec.Code, rec.Body)
	}
}

func FuzzPutEntry(f *testing.F) {
	h := fuzzAPI(f)
	for _, s := range [][3]string{
		{"u1", "tee", `{"region":"us-east-1","channels":["email","app"]}`},
		{"u1", "tee", `{"region":"us-east-1"}`}, {"u1", "tee", `{"region":"mars","channels":["fax"]}`},
		{"u.1", "t/e", `{}`}, {"", "", `null`}, {"u1", "tee", `{"region":"us-east-1","region":"eu-west-1"}`},
		{"u1", "tee", `{"Region":"us-east-1"}`}, {"u1", "tee", `{"region":"us-east-1","channels":["email","email"]}`},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, user, sku, body string) {
		serveFuzz(t, h, http.MethodPut, "/v1/users/"+url.PathEscape(user)+"/wishlist/"+url.PathEscape(sku), "application/json", body)
	})
}

func FuzzPutPreferences(f *testing.F) {
	h := fuzzAPI(f)
	for _, s := range [][2]string{
		{"u1", `{"channels":["email"],"locale":"de-DE","time_zone":"Europe/Berlin","quiet_hours":{"start":"22:00","end":"07:00"},"contacts":{"email":"a@example.com","sms":"+4915112345678"}}`},
		{"u1", `{"unsubscribed":true}`}, {"u1", `{"opt_out":["sms"]}`}, {"u1", `{"time_zone":"Mars/Olympus"}`},
		{"u1", `{"quiet_hours":{"start":"25:00","end":"x"}}`}, {"u1", `{"contacts":{"email":"not an address"}}`},
		{"u1", `{"unsubscribed":true,"unsubscribed":false}`}, {"u1", `{"locale":"xx-invalid-tag-!!"}`},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, user, body string) {
		serveFuzz(t, h, http.MethodPut, "/v1/users/"+url.PathEscape(user)+"/preferences", "application/json", body)
	})
}

func FuzzImport(f *testing.F) {
	h := fuzzAPI(f)
	for _, s := range []string{
		`{"user_id":"u1","sku":"tee","region":"us-east-1","channels":["email"]}` + "\n" + `{"user_id":"u2","sku":"tee","region":"eu-west-1","channels":["app"],"at":"2026-01-02T03:04:05Z"}`,
		`{"user_id":"u1"}`, "\n\n", `[`, `{"user_id":"u1","sku":"tee","region":"us-east-1","channels":["email"],"user_id":"u2"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		serveFuzz(t, h, http.MethodPost, "/v1/wishlists:import", "application/x-ndjson", body)
	})
}
