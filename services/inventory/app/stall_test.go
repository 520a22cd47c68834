package app_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// relayResumeBound is how soon after Redis resumes a restock applied then
// must be in Kafka: the relay's longest back-off (5 s) plus a blocked read's
// timeout margin, with room for a loaded machine.
const relayResumeBound = 15 * time.Second

// TestRedisStall: with redis-server paused (SIGSTOP), every request answers
// 503 within REQUEST_TIMEOUT and /readyz fails on redis; after SIGCONT a
// retry with the write's Idempotency-Key answers its result (no 409 behind
// the dead attempt's claim) and the restock exists once; a keyless write
// answered 503 is applied at most once; the relay publishes again by itself.
// The 40 s stall of the issue runs in make e2e against the binaries.
func TestRedisStall(t *testing.T) {
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if r.Embedded() {
		t.Skip("no redis-server on PATH: the embedded stand-in cannot be paused")
	}
	k := env.Kafka(t)
	applyCatalog(t, k.Brokers, 3)
	restocks := collect(t, k.Brokers, catalog.Restock)
	cfg := testConfig(t, r.URL(), k.Brokers)
	cfg.RequestTimeout = time.Second
	svc := start(t, cfg)
	p := testenv.Unique(t, "stall")
	keyed, keyless := p+"-keyed", p+"-keyless"
	// Connections ready in the pools, as a serving process has.
	put(t, svc.URL, keyed, "us-east-1", 0, "Idempotency-Key", p+"-warm")
	put(t, svc.URL, p+"-warm", "us-east-1", 0)

	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = r.Resume()
		}
	}()
	within := cfg.RequestTimeout + stallSlack
	timed := func(method, path string, body any, wantCode int, mention string, hdr ...string) {
		t.Helper()
		t0 := time.Now()
		code, b, _ := do(t, method, svc.URL+path, token, body, hdr...)
		if took := time.Since(t0); took > within {
			t.Errorf("%s %s answered after %s, want within %s", method, path, took, within)
		}
		if code != wantCode || !strings.Contains(string(b), mention) {
			t.Errorf("%s %s: %d %s, want %d mentioning %q", method, path, code, b, wantCode, mention)
		}
	}
	five := map[string]any{"region": "us-east-1", "quantity": 5}
	timed("PUT", "/v1/stock/"+keyed, five, 503, "Idempotency-Key", "Idempotency-Key", p+"-k1")
	timed("PUT", "/v1/stock/"+keyless, five, 503, "may or may not have been applied")
	timed("PUT", "/v1/stock/"+keyed, five, 503, "Idempotency-Key", "Idempotency-Key", p+"-k1")
	timed("POST", "/v1/stock", map[string]any{"updates": []any{map[string]any{"sku": keyed, "region": "eu-west-1", "quantity": 1}}}, 503, "unavailable", "Idempotency-Key", p+"-k2")
	timed("GET", "/v1/stock/"+keyed+"?region=us-east-1", nil, 503, "unavailable")
	t0 := time.Now()
	code, b, _ := do(t, "GET", svc.URL+"/readyz", "", nil)
	var ready map[string]string
	_ = json.Unmarshal(b, &ready)
	if code != http.StatusServiceUnavailable || ready["redis"] == "ok" || time.Since(t0) > 2*time.Second+stallSlack {
		t.Errorf("/readyz during the stall: %d %s after %s", code, b, time.Since(t0))
	}

	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	at := time.Now()
	res := put(t, svc.URL, keyed, "us-east-1", 5, "Idempotency-Key", p+"-k1")
	if !res.Restock || res.Episode != 1 || res.Previous != 0 {
		t.Fatalf("retry after the stall: %+v, want the restock, episode 1", res)
	}
	again := put(t, svc.URL, keyed, "us-east-1", 5, "Idempotency-Key", p+"-k1")
	if again != res {
		t.Fatalf("second retry %+v, first %+v", again, res)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		code, _, _ := do(t, "GET", svc.URL+"/readyz", "", nil)
		return code == http.StatusOK
	}, "/readyz ready again")
	// The keyless write's outcome: applied once, or not at all.
	var keylessEpisodes []int64
	if code, b, _ := do(t, "GET", svc.URL+"/v1/stock/"+keyless+"?region=us-east-1", token, nil); code == http.StatusOK {
		var lv putResult
		_ = json.Unmarshal(b, &lv)
		if lv.Episode != 1 || lv.Quantity != 5 {
			t.Fatalf("keyless write after the stall: %s", b)
		}
		keylessEpisodes = []int64{1}
	} else if code != http.StatusNotFound {
		t.Fatalf("keyless level: %d %s", code, b)
	}
	testenv.Eventually(t, relayResumeBound, func() bool {
		return len(restocks.restocks(t, keyed)) > 0
	}, "the relay publishes within %s of the resume", relayResumeBound)
	t.Logf("restock in Kafka %s after the resume; keyless write applied: %v", time.Since(at).Round(time.Millisecond), len(keylessEpisodes) == 1)
	want := map[string][]int64{keyed: {1}}
	if len(keylessEpisodes) > 0 {
		want[keyless] = keylessEpisodes
	}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	settle(t, rdb, restocks)
	checkOnce(t, restocks.restocks(t, p), want)
}
