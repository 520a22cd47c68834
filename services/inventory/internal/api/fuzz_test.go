package api_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"

	"go.uber.org/zap"

	"backinstock/services/inventory/internal/api"
	"backinstock/services/inventory/internal/stock"
	"backinstock/services/inventory/internal/store"
	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// The stock API's bodies and path parameters are fuzzed against the real
// handler over a real redis-server: whatever a caller sends, the answer is
// a 2xx or a 4xx that names the problem, never a 5xx or a panic. The seeds
// run in `make test`; `make fuzz` runs each target for FUZZTIME.

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
	st, err := store.New(rdb, store.Options{Shards: 4})
	if err != nil {
		f.Fatal(err)
	}
	a, err := api.New(st, api.Options{Token: "t", BulkMaxItems: 50, Rules: stock.Rules{Regions: catalog.DefaultRegions}}, zap.NewNop(), api.NewMetrics(nil))
	if err != nil {
		f.Fatal(err)
	}
	return a
}

func FuzzPutStock(f *testing.F) {
	h := fuzzAPI(f)
	for _, s := range [][2]string{
		{"tee", `{"region":"us-east-1","quantity":5}`},
		{"tee", `{"region":"us-east-1","quantity":0,"product":{"title":"Tee","url":"https://shop.example/t","price":"9.50"}}`},
		{"tee", `{"region":"us-east-1","quantity":5,"delivery":{"mode":"stock_aware","per_unit":2}}`},
		{"tee", `{"region":"us-east-1","quantity":-1}`}, {"tee", `{"region":"mars","quantity":1}`},
		{"t%2Fe", `{"region":"us-east-1","quantity":1}`}, {"", `{}`}, {"tee", `{"quantity":1e40}`},
		{"tee", `{"region":"us-east-1","quantity":1,"quantity":2}`}, {"tee", `[`}, {"tee", ``},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, sku, body string) {
		testenv.ServeFuzz(t, h, http.MethodPut, "http://inventory/v1/stock/"+url.PathEscape(sku), "application/json", "t", body)
	})
}

func FuzzBulkStock(f *testing.F) {
	h := fuzzAPI(f)
	for _, s := range []string{
		`{"updates":[{"sku":"tee","region":"us-east-1","quantity":3}]}`,
		`{"updates":[{"sku":"tee","region":"us-east-1","quantity":0},{"sku":"bad sku","region":"x","quantity":-1}]}`,
		`{"updates":[]}`, `{"updates":null}`, `{"updates":[{}]}`, `{}`, `[]`, `{"updates":[{"sku":"a","region":"eu-west-1","quantity":1,"product":{"title":""}}]}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		testenv.ServeFuzz(t, h, http.MethodPost, "http://inventory/v1/stock", "application/json", "t", body)
	})
}
