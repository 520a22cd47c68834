package api_test

import (
	"context"
	"net/http"
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
		testenv.ServeFuzz(t, h, http.MethodPut, "http://wishlist/v1/users/"+url.PathEscape(user)+"/wishlist/"+url.PathEscape(sku), "application/json", "t", body)
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
		testenv.ServeFuzz(t, h, http.MethodPut, "http://wishlist/v1/users/"+url.PathEscape(user)+"/preferences", "application/json", "t", body)
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
		testenv.ServeFuzz(t, h, http.MethodPost, "http://wishlist/v1/wishlists:import", "application/x-ndjson", "t", body)
	})
}

func FuzzPutDevice(f *testing.F) {
	h := fuzzAPI(f)
	const key, auth = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM", "tBHItJI5svbpez7KI4CCXg"
	for _, s := range [][3]string{
		{"u1", "phone", `{"kind":"fcm","token":"fcm-token:APA91b"}`},
		{"u1", "laptop", `{"kind":"webpush","endpoint":"https://push.example/send/1","p256dh":"` + key + `","auth":"` + auth + `"}`},
		{"u1", "browser", `{"kind":"webpush","endpoint":"https://push.example/send/2","expirationTime":null,"keys":{"p256dh":"` + key + `","auth":"` + auth + `"}}`},
		{"u1", "both", `{"kind":"webpush","endpoint":"https://push.example/send/3","p256dh":"` + key + `","auth":"` + auth + `","keys":{"p256dh":"` + key + `","auth":"` + auth + `"}}`},
		{"u1", "x", `{"kind":"webpush","endpoint":"push.example","p256dh":"AAAA","auth":"=="}`},
		{"u1", "x", `{"kind":"apns","token":"t"}`}, {"u.1", "a/b", `{}`}, {"", "", `null`},
		{"u1", "x", `{"kind":"fcm","token":"t","token":"u"}`}, {"u1", "x", `{"Kind":"fcm","token":"t"}`},
		{"u1", "x", `{"kind":"fcm","token":"t\u0000"}`}, {"u1", "x", `{"kind":"fcm","token":"t","expirationTime":"soon"}`},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, user, id, body string) {
		testenv.ServeFuzz(t, h, http.MethodPut, "http://wishlist/v1/users/"+url.PathEscape(user)+"/devices/"+url.PathEscape(id), "application/json", "t", body)
	})
}

func FuzzDeleteDevice(f *testing.F) {
	h := fuzzAPI(f)
	for _, s := range [][3]string{
		{"u1", "phone", ""}, {"u1", "phone", strings.Repeat("ab", 32)}, {"u1", "phone", "xyz"},
		{"u1", "phone", strings.Repeat("AB", 32)}, {"u.1", "a/b", "%zz"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, user, id, hash string) {
		q := ""
		if hash != "" {
			q = "?" + url.Values{"token_sha256": {hash}}.Encode()
		}
		testenv.ServeFuzz(t, h, http.MethodDelete, "http://wishlist/v1/users/"+url.PathEscape(user)+"/devices/"+url.PathEscape(id)+q, "", "t", "")
	})
}
