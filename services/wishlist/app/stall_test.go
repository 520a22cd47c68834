package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/wishlist/app"
	"backinstock/services/wishlist/internal/store"
	"backinstock/shared/testenv"
)

// TestRedisStallWritesAreIdempotent: with redis-server paused (SIGSTOP),
// every request answers 503 within REQUEST_TIMEOUT and /readyz fails on
// redis. Every write here is idempotent by nature (an entry keeps its
// wishlist time; preferences are replaced whole; a removal of what is gone
// is a 404), so the answer to "was my 503'd write applied?" is to repeat
// it: after SIGCONT each repeated write (twice) leaves the store as one
// application would, with the entry's place kept, and the changelog agrees
// with the store (a rebuild from it reproduces the store).
func TestRedisStallWritesAreIdempotent(t *testing.T) {
	kcfg := sharedKafka(t)
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if r.Embedded() {
		t.Skip("no redis-server on PATH: the embedded stand-in cannot be paused")
	}
	cfg := baseConfig(t, kcfg, r.URL())
	cfg.RequestTimeout = time.Second
	c := client{t: t, base: startServe(t, cfg)}
	u := testenv.Unique(t, "stall")
	kept, moved, gone, added := u+"-kept", u+"-moved", u+"-gone", u+"-added"
	c.putEntry(u, kept, "us-east-1", "app")
	c.putEntry(u, moved, "us-east-1", "app")
	c.putEntry(u, gone, "us-east-1", "app")
	c.putDevice(u, "old-phone", `{"kind":"fcm","token":"tok-old"}`)
	var before struct {
		Items []struct {
			SKU   string    `json:"sku"`
			Since time.Time `json:"since"`
		} `json:"items"`
	}
	c.do("GET", "/v1/users/"+u+"/wishlist", token, "", "", &before)
	since := map[string]time.Time{}
	for _, it := range before.Items {
		since[it.SKU] = it.Since
	}

	type write struct{ method, path, body string }
	writes := []write{
		{"PUT", "/v1/users/" + u + "/wishlist/" + added, `{"region":"eu-west-1","channels":["app","email"]}`},
		{"PUT", "/v1/users/" + u + "/wishlist/" + moved, `{"region":"ap-south-1","channels":["sms"]}`},
		{"DELETE", "/v1/users/" + u + "/wishlist/" + gone, ""},
		{"PUT", "/v1/users/" + u + "/preferences", `{"locale":"en-GB","channels":["web"]}`},
		{"PUT", "/v1/users/" + u + "/devices/phone", `{"kind":"fcm","token":"tok-stall"}`},
		{"DELETE", "/v1/users/" + u + "/devices/old-phone", ""},
	}
	send := func(w write) (int, string, time.Duration) {
		t.Helper()
		ct := ""
		if w.body != "" {
			ct = "application/json"
		}
		t0 := time.Now()
		var out json.RawMessage
		code := c.do(w.method, w.path, token, ct, w.body, &out)
		return code, string(out), time.Since(t0)
	}

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
	for _, w := range append(writes, write{"GET", "/v1/users/" + u + "/wishlist", ""}) {
		code, body, took := send(w)
		if code != http.StatusServiceUnavailable || took > within || !strings.Contains(body, "unavailable") {
			t.Errorf("%s %s during the stall: %d %s after %s, want 503 within %s", w.method, w.path, code, body, took, within)
		}
	}
	t0 := time.Now()
	var ready map[string]string
	if code := c.do("GET", "/readyz", "", "", "", &ready); code != http.StatusServiceUnavailable || ready["redis"] == "ok" {
		t.Errorf("/readyz during the stall: %d %v after %s", code, ready, time.Since(t0))
	}
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true

	// Repeat every write twice: the answers agree, a removal already done
	// by the stalled attempt is a 404.
	for round := range 2 {
		for _, w := range writes {
			code, body, _ := send(w)
			// A device PUT is a 201 if the stalled attempt did not apply
			// (the id is new) and a 200 if it did; a device DELETE is 204
			// either way.
			device := strings.Contains(w.path, "/devices/")
			ok := code == http.StatusOK || (device && w.method == "PUT" && code == http.StatusCreated) ||
				(w.method == "DELETE" && (code == http.StatusNoContent || code == http.StatusNotFound && !device))
			if !ok || (round == 1 && w.method == "DELETE" && !device && code != http.StatusNotFound) {
				t.Fatalf("round %d: %s %s: %d %s", round, w.method, w.path, code, body)
			}
		}
	}
	var after struct {
		Items []struct {
			SKU      string    `json:"sku"`
			Region   string    `json:"region"`
			Channels []string  `json:"channels"`
			Since    time.Time `json:"since"`
		} `json:"items"`
	}
	c.do("GET", "/v1/users/"+u+"/wishlist", token, "", "", &after)
	got := map[string]string{}
	for _, it := range after.Items {
		got[it.SKU] = it.Region + " " + strings.Join(it.Channels, ",")
		if s, ok := since[it.SKU]; ok && !it.Since.Equal(s) {
			t.Errorf("%s lost its place: since %s, was %s", it.SKU, it.Since, s)
		}
	}
	want := map[string]string{kept: "us-east-1 app", moved: "ap-south-1 sms", added: "eu-west-1 app,email"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries after the stall %v, want %v", got, want)
	}
	if ids := deviceIDs(c.devices(u)); ids != "phone" {
		t.Fatalf("devices after the stall: %s, want phone", ids)
	}
	for sku, region := range map[string]string{moved: "ap-south-1", gone: ""} {
		var counts struct {
			Counts map[string]int64 `json:"counts"`
		}
		c.do("GET", "/v1/skus/"+sku+"/wishlisters", token, "", "", &counts)
		for reg, n := range counts.Counts {
			if w := map[bool]int64{true: 1, false: 0}[reg == region]; n != w {
				t.Errorf("%s has %d wishlisters in %s, want %d", sku, n, reg, w)
			}
		}
	}

	// The changelog agrees with the store: a rebuild from it reproduces
	// this user's entries, places and preferences.
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	ctx := context.Background()
	snapshot := func() map[string]string { return rdb.HGetAll(ctx, store.UserKey(u)).Val() }
	stored := snapshot()
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := app.RunRebuild(ctx, cfg, testLogger(t)); err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if rebuilt := snapshot(); !reflect.DeepEqual(rebuilt, stored) {
		t.Fatalf("rebuilt from the changelog:\n%v\nstore after the stall:\n%v", rebuilt, stored)
	}
}
