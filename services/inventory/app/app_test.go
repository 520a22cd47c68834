package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"backinstock/services/inventory/internal/api"
	"backinstock/services/inventory/internal/store"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// TestConcurrentWritersOneSKU: 50 writers flip one sku between 0 and
// positive levels. The restock events in Kafka are exactly the transitions
// the stock history shows: episodes 1..N, consecutive, no duplicates.
func TestConcurrentWritersOneSKU(t *testing.T) {
	k := env.Kafka(t)
	applyCatalog(t, k.Brokers, 3)
	url, rdb := freshRedisURL(t)
	svc := start(t, testConfig(t, url, k.Brokers))
	restocks, levels := collect(t, k.Brokers, catalog.Restock), collect(t, k.Brokers, catalog.Stock)
	sku := testenv.Unique(t, "hammer")
	const writers, each = 50, 30
	var mu sync.Mutex
	var answered []putResult
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range each {
				q := int64(0)
				if rng.IntN(2) == 1 {
					q = 1 + rng.Int64N(5)
				}
				r := put(t, svc.URL, sku, "us-east-1", q)
				mu.Lock()
				answered = append(answered, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	settle(t, rdb, restocks, levels)

	// The history: the stock levels in the order the script applied them.
	hist := levels.levels(t, sku+"|")
	var transitions int64
	prev := int64(0)
	for _, lv := range hist {
		if prev <= 0 && lv.Quantity > 0 {
			transitions++
		}
		prev = lv.Quantity
		if lv.Episode != transitions {
			t.Fatalf("stock record %+v: episode %d, history says %d", lv, lv.Episode, transitions)
		}
	}
	evs := restocks.restocks(t, sku)
	if int64(len(evs)) != transitions {
		t.Fatalf("%d restock events for %d transitions", len(evs), transitions)
	}
	eps := make([]int64, len(evs))
	for i, ev := range evs {
		eps[i] = ev.Episode
	}
	for i, ep := range eps { // one partition per key: in order
		if ep != int64(i+1) {
			t.Fatalf("episodes %v are not 1..%d in order", eps, len(eps))
		}
	}
	var said int64
	for _, r := range answered {
		if r.Restock {
			said++
		}
	}
	if said != transitions || transitions == 0 {
		t.Fatalf("responses said %d restocks, history %d", said, transitions)
	}
	t.Logf("%d writes, %d stock records, %d restocks", len(answered), len(hist), transitions)
}

// TestIdempotencyKey: the same key and body answer the stored result and
// create no episode; another body is 422; a retry in flight is 409.
func TestIdempotencyKey(t *testing.T) {
	k := env.Kafka(t)
	applyCatalog(t, k.Brokers, 3)
	url, rdb := freshRedisURL(t)
	cfg := testConfig(t, url, k.Brokers)
	cfg.RelayEnabled = false // keep the outbox to count entries
	svc := start(t, cfg)
	sku := testenv.Unique(t, "idem")
	put(t, svc.URL, sku, "us-east-1", 0)
	body := map[string]any{"region": "us-east-1", "quantity": 5}
	c1, b1, _ := do(t, "PUT", svc.URL+"/v1/stock/"+sku, token, body, "Idempotency-Key", "key-1")
	if c1 != 200 || !strings.Contains(string(b1), `"restock":true`) {
		t.Fatalf("first: %d %s", c1, b1)
	}
	n := backlog(t, rdb)
	put(t, svc.URL, sku, "us-east-1", 0) // sold out again meanwhile
	n++
	c2, b2, h2 := do(t, "PUT", svc.URL+"/v1/stock/"+sku, token, body, "Idempotency-Key", "key-1")
	if c2 != 200 || string(b2) != string(b1) || h2.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry: %d %s (first %s)", c2, b2, b1)
	}
	if got := backlog(t, rdb); got != n {
		t.Fatalf("retry appended %d outbox entries", got-n)
	}
	if code, b, _ := do(t, "GET", svc.URL+"/v1/stock/"+sku+"?region=us-east-1", token, nil); code != 200 || !strings.Contains(string(b), `"quantity":0,"episode":1`) {
		t.Fatalf("after retry: %d %s", code, b)
	}
	c3, b3, _ := do(t, "PUT", svc.URL+"/v1/stock/"+sku, token, map[string]any{"region": "us-east-1", "quantity": 6}, "Idempotency-Key", "key-1")
	if c3 != 422 || !strings.Contains(string(b3), "Idempotency-Key") {
		t.Fatalf("other body: %d %s", c3, b3)
	}
	// A request with the same key and body still in flight: claim it as the
	// first attempt would, then retry.
	st, err := store.New(rdb, store.Options{Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(body)
	now := time.Now()
	claim, err := st.Begin(context.Background(), now, now.Add(time.Minute), api.KeyID("key-2"), api.RequestHash("PUT", "/v1/stock/"+sku, raw))
	if err != nil || claim.State != store.Proceed {
		t.Fatalf("claim: %v %v", claim.State, err)
	}
	if c, b, _ := do(t, "PUT", svc.URL+"/v1/stock/"+sku, token, raw, "Idempotency-Key", "key-2"); c != 409 || !strings.Contains(string(b), "in_flight") {
		t.Fatalf("in flight: %d %s", c, b)
	}
	// An attempt that died holding its claim: the claim ended with that
	// attempt's deadline, so the retry proceeds at once.
	claim, err = st.Begin(context.Background(), now.Add(-time.Minute), now.Add(-time.Second), api.KeyID("key-3"), api.RequestHash("PUT", "/v1/stock/"+sku, raw))
	if err != nil || claim.State != store.Proceed {
		t.Fatalf("claim: %v %v", claim.State, err)
	}
	if c, b, _ := do(t, "PUT", svc.URL+"/v1/stock/"+sku, token, raw, "Idempotency-Key", "key-3"); c != 200 {
		t.Fatalf("after a dead attempt: %d %s", c, b)
	}
	// Bulk: a retry answers the same per-item results.
	bulk := map[string]any{"updates": []map[string]any{{"sku": sku, "region": "eu-west-1", "quantity": 3}, {"sku": sku, "region": "mars", "quantity": 1}}}
	cb1, bb1, _ := do(t, "POST", svc.URL+"/v1/stock", token, bulk, "Idempotency-Key", "bulk-1")
	n = backlog(t, rdb)
	cb2, bb2, _ := do(t, "POST", svc.URL+"/v1/stock", token, bulk, "Idempotency-Key", "bulk-1")
	if cb1 != 200 || cb2 != 200 || string(bb1) != string(bb2) || backlog(t, rdb) != n {
		t.Fatalf("bulk retry: %d %s / %d %s", cb1, bb1, cb2, bb2)
	}
}

// TestBadInput: each bad request gets its status and a JSON error naming the
// problem, and none changes stock or appends to the outbox.
func TestBadInput(t *testing.T) {
	url, rdb := freshRedisURL(t)
	cfg := testConfig(t, url, nil)
	cfg.RelayEnabled = false
	cfg.MaxBodyBytes = 2048
	svc := start(t, cfg)
	sku := testenv.Unique(t, "bad")
	put(t, svc.URL, sku, "us-east-1", 3)
	n := backlog(t, rdb)
	path := "/v1/stock/" + sku
	big := `{"region":"us-east-1","quantity":1,"product":{"title":"` + strings.Repeat("x", 4096) + `"}}`
	tests := []struct {
		name, method, path, tok, body string
		hdr                           []string
		code                          int
		mention                       string
	}{
		{"no token", "PUT", path, "", `{"region":"us-east-1","quantity":0}`, nil, 401, "Bearer"},
		{"wrong token", "PUT", path, "nope", `{"region":"us-east-1","quantity":0}`, nil, 401, "token"},
		{"body over the limit", "PUT", path, token, big, nil, 413, "exceeds"},
		{"malformed JSON", "PUT", path, token, `{"region":"us-east-1",`, nil, 400, "JSON"},
		{"unknown field", "PUT", path, token, `{"region":"us-east-1","quantity":0,"qty":1}`, nil, 400, "qty"},
		{"duplicate quantity", "PUT", path, token, `{"region":"us-east-1","quantity":0,"quantity":5}`, nil, 400, `duplicate key "quantity"`},
		{"duplicate nested key", "PUT", path, token, `{"region":"us-east-1","quantity":0,"product":{"title":"a","title":"b"}}`, nil, 400, `duplicate key "product.title"`},
		{"key in another case", "PUT", path, token, `{"Region":"us-east-1","quantity":0}`, nil, 400, `unknown key "Region" (did you mean "region"?)`},
		{"non-integer quantity", "PUT", path, token, `{"region":"us-east-1","quantity":2.5}`, nil, 400, "quantity"},
		{"string quantity", "PUT", path, token, `{"region":"us-east-1","quantity":"0"}`, nil, 400, "quantity"},
		{"missing quantity", "PUT", path, token, `{"region":"us-east-1"}`, nil, 422, "quantity"},
		{"negative quantity", "PUT", path, token, `{"region":"us-east-1","quantity":-1}`, nil, 422, "quantity"},
		{"quantity too large", "PUT", path, token, `{"region":"us-east-1","quantity":1000000001}`, nil, 422, "quantity"},
		{"bad sku characters", "PUT", "/v1/stock/" + sku + ".x", token, `{"region":"us-east-1","quantity":0}`, nil, 422, "sku"},
		{"unknown region", "PUT", path, token, `{"region":"mars-1","quantity":0}`, nil, 422, "region"},
		{"bad product", "PUT", path, token, `{"region":"us-east-1","quantity":0,"product":{"title":"t","url":"ftp://x"}}`, nil, 422, "product.url"},
		{"bad delivery", "PUT", path, token, `{"region":"us-east-1","quantity":0,"delivery":{"mode":"most"}}`, nil, 422, "delivery.mode"},
		{"two JSON values", "PUT", path, token, `{"region":"us-east-1","quantity":0}{}`, nil, 400, "single"},
		{"wrong content type", "PUT", path, token, `{"region":"us-east-1","quantity":0}`, []string{"Content-Type", "text/plain"}, 415, "content-type"},
		{"bad idempotency key", "PUT", path, token, `{"region":"us-east-1","quantity":0}`, []string{"Idempotency-Key", "has space"}, 422, "Idempotency-Key"},
		{"empty bulk", "POST", "/v1/stock", token, `{"updates":[]}`, nil, 422, "updates"},
		{"bulk unknown field", "POST", "/v1/stock", token, `{"updates":[{"sku":"a","region":"us-east-1","quantity":0,"x":1}]}`, nil, 400, "x"},
		{"bulk duplicate key", "POST", "/v1/stock", token, `{"updates":[{"sku":"` + sku + `","region":"us-east-1","quantity":0,"quantity":5}]}`, nil, 400, `duplicate key "updates[0].quantity"`},
		{"bulk key in another case", "POST", "/v1/stock", token, `{"updates":[{"sku":"` + sku + `","region":"us-east-1","Quantity":0}]}`, nil, 400, `unknown key "updates[0].Quantity" (did you mean "updates[0].quantity"?)`},
		{"bulk duplicate updates", "POST", "/v1/stock", token, `{"updates":[],"updates":[{"sku":"` + sku + `","region":"us-east-1","quantity":0}]}`, nil, 400, `duplicate key "updates"`},
		{"get unknown region", "GET", path + "?region=mars-1", token, "", nil, 422, "region"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body any
			if tt.body != "" {
				body = tt.body
			}
			code, b, _ := do(t, tt.method, svc.URL+tt.path, tt.tok, body, tt.hdr...)
			var e struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if code != tt.code || json.Unmarshal(b, &e) != nil || e.Error.Code == "" || !strings.Contains(e.Error.Message, tt.mention) {
				t.Fatalf("got %d %s; want %d naming %q", code, b, tt.code, tt.mention)
			}
		})
	}
	if code, b, _ := do(t, "GET", svc.URL+path+"?region=us-east-1", token, nil); code != 200 || !strings.Contains(string(b), `"quantity":3,`) {
		t.Fatalf("stock changed: %d %s", code, b)
	}
	if got := backlog(t, rdb); got != n {
		t.Fatalf("bad requests appended %d outbox entries", got-n)
	}
}

// TestBulk: one body, answered per item; invalid items change nothing.
func TestBulk(t *testing.T) {
	url, rdb := freshRedisURL(t)
	cfg := testConfig(t, url, nil)
	cfg.RelayEnabled = false
	cfg.BulkMaxItems = 100
	svc := start(t, cfg)
	p := testenv.Unique(t, "bulk")
	var ups []map[string]any
	for i := range 60 {
		ups = append(ups, map[string]any{"sku": fmt.Sprintf("%s-%d", p, i), "region": "ap-south-1", "quantity": i % 3})
	}
	ups = append(ups, map[string]any{"sku": p + "-bad.sku", "region": "ap-south-1", "quantity": 1},
		map[string]any{"sku": p + "-0", "region": "ap-south-1", "quantity": -4})
	code, b, _ := do(t, "POST", svc.URL+"/v1/stock", token, map[string]any{"updates": ups})
	var resp api.BulkResponse
	if code != 200 || json.Unmarshal(b, &resp) != nil {
		t.Fatalf("%d %s", code, b)
	}
	if resp.Applied != 60 || resp.Rejected != 2 || resp.Restocks != 40 || len(resp.Results) != 62 {
		t.Fatalf("applied %d rejected %d restocks %d results %d", resp.Applied, resp.Rejected, resp.Restocks, len(resp.Results))
	}
	if r := resp.Results[60]; r.Status != 422 || !strings.Contains(r.Error.Message, "updates[60].sku") {
		t.Fatalf("bad item: %+v", r)
	}
	if r := resp.Results[61]; r.Status != 422 || !strings.Contains(r.Error.Message, "updates[61].quantity") {
		t.Fatalf("bad item: %+v", r)
	}
	if backlog(t, rdb) != 60 {
		t.Fatalf("outbox %d, want 60", backlog(t, rdb))
	}
	too := make([]map[string]any, 101)
	for i := range too {
		too[i] = ups[0]
	}
	if code, b, _ := do(t, "POST", svc.URL+"/v1/stock", token, map[string]any{"updates": too}); code != 422 || !strings.Contains(string(b), "at most 100") {
		t.Fatalf("too many: %d %s", code, b)
	}
}

// TestShutdownFlushesRelay: updates accepted right before shutdown are in
// Kafka when Run returns.
func TestShutdownFlushesRelay(t *testing.T) {
	k := env.Kafka(t)
	applyCatalog(t, k.Brokers, 3)
	url, rdb := freshRedisURL(t)
	restocks := collect(t, k.Brokers, catalog.Restock)
	svc := start(t, testConfig(t, url, k.Brokers))
	p := testenv.Unique(t, "flush")
	var ups []map[string]any
	for i := range 300 {
		ups = append(ups, map[string]any{"sku": fmt.Sprintf("%s-%d", p, i), "region": "us-east-1", "quantity": 1})
	}
	if code, b, _ := do(t, "POST", svc.URL+"/v1/stock", token, map[string]any{"updates": ups}); code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	svc.Stop(t)
	if n := backlog(t, rdb); n != 0 {
		t.Fatalf("%d outbox entries left after shutdown", n)
	}
	testenv.Eventually(t, 20*time.Second, restocks.caughtUp, "restocks read")
	if got := len(restocks.restocks(t, p)); got != 300 {
		t.Fatalf("%d restocks in Kafka, want 300", got)
	}
}
