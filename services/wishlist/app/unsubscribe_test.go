package app_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/optout"
	"backinstock/topics/unsubscribe"
)

const (
	unsubSecret = "unsubscribe-test-secret-of-32-bytes-or-more"
	otherSecret = "another-secret-that-is-long-enough-for-hmac"
)

// page sends a request without the API token and returns the status and
// the body (the unsubscribe routes answer HTML).
func (c client) page(method, path, contentType, body string) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := contract.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func (c client) prefs(user string) map[string]any {
	c.t.Helper()
	var got struct{ Preferences map[string]any }
	if code := c.do("GET", "/v1/users/"+user+"/preferences", token, "", "", &got); code != 200 {
		c.t.Fatalf("get preferences of %s: %d", user, code)
	}
	return got.Preferences
}

// TestUnsubscribeOneClick: GET shows a page and changes nothing; POST
// with the one-click body unsubscribes (a channel: opt_out; all:
// unsubscribed), once; every bad link or body is refused, naming the
// problem, and changes nothing.
func TestUnsubscribeOneClick(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	cfg := baseConfig(t, kcfg, r.URL())
	cfg.UnsubscribeKeys = "new:" + unsubSecret + ",old:" + otherSecret
	c := client{t: t, base: startServe(t, cfg)}
	keys, err := unsubscribe.ParseKeys(cfg.UnsubscribeKeys)
	if err != nil {
		t.Fatal(err)
	}
	oldOnly, _ := unsubscribe.ParseKeys("old:" + otherSecret)
	retired, _ := unsubscribe.ParseKeys("gone:" + unsubSecret)
	forged, _ := unsubscribe.ParseKeys("new:" + otherSecret)

	alice, bob := testenv.Unique(t, "alice"), testenv.Unique(t, "bob")
	const form = "application/x-www-form-urlencoded"
	prefs := `{"channels":["app","email"],"contacts":{"email":"alice@example.com"}}`
	if code := c.do("PUT", "/v1/users/"+alice+"/preferences", token, "application/json", prefs, nil); code != 200 {
		t.Fatalf("put preferences: %d", code)
	}
	link := func(ks unsubscribe.Keys, user, scope string) string {
		u, err := ks.URL("", user, scope)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	aliceEmail := link(keys, alice, "email")

	cl := newClient(t, kcfg)
	logBefore := endOffsets(t, cl, catalog.WishlistChanges)
	before := c.prefs(alice)
	tests := []struct {
		name, method, path, ct, body string
		status                       int
		code                         string
	}{
		{"no token", "POST", unsubscribe.Path, form, "List-Unsubscribe=One-Click", 400, "bad_token"},
		{"malformed token", "POST", unsubscribe.Path + "?token=abc", form, "List-Unsubscribe=One-Click", 400, "bad_token"},
		{"malformed on GET", "GET", unsubscribe.Path + "?token=v1.new." + alice + ".fax.x", "", "", 400, "bad_token"},
		{"unknown key", "POST", link(retired, alice, "email"), form, "List-Unsubscribe=One-Click", 403, "unknown_key"},
		{"forged", "POST", link(forged, alice, "email"), form, "List-Unsubscribe=One-Click", 403, "bad_signature"},
		{"forged on GET", "GET", link(forged, alice, "all"), "", "", 403, "bad_signature"},
		{"user swapped", "POST", strings.Replace(aliceEmail, "."+alice+".", "."+bob+".", 1), form, "List-Unsubscribe=One-Click", 403, "bad_signature"},
		{"no body", "POST", aliceEmail, form, "", 400, "bad_request"},
		{"wrong body", "POST", aliceEmail, form, "List-Unsubscribe=Yes", 400, "bad_request"},
		{"JSON body", "POST", aliceEmail, "application/json", `{"List-Unsubscribe":"One-Click"}`, 400, "bad_request"},
		{"confirmation page", "GET", aliceEmail, "", "", 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := client{t: t, base: c.base}
			status, body := c.page(tt.method, tt.path, tt.ct, tt.body)
			if status != tt.status || !strings.Contains(body, tt.code) {
				t.Fatalf("%d %s, want %d with code %q", status, body, tt.status, tt.code)
			}
			if tt.status == 200 && !strings.Contains(body, `<form method="post">`) {
				t.Fatalf("confirmation page without the form: %s", body)
			}
		})
	}
	if got := c.prefs(alice); !reflect.DeepEqual(got, before) {
		t.Fatalf("preferences changed by refused requests: %v, was %v", got, before)
	}
	if after := endOffsets(t, cl, catalog.WishlistChanges); after != logBefore {
		t.Fatalf("refused requests wrote %d changelog records", after-logBefore)
	}

	// One click: email joins opt_out, the rest stays; a second click (or a
	// mail client's retry) answers the same and writes nothing.
	for i := range 2 {
		status, body := c.page("POST", aliceEmail, form, "List-Unsubscribe=One-Click")
		if status != 200 || !strings.Contains(body, "You are unsubscribed") {
			t.Fatalf("click %d: %d %s", i+1, status, body)
		}
	}
	got := c.prefs(alice)
	if !reflect.DeepEqual(got["opt_out"], []any{"email"}) || !reflect.DeepEqual(got["channels"], []any{"app", "email"}) || got["unsubscribed"] == true {
		t.Fatalf("preferences after unsubscribing from email = %v", got)
	}
	if after := endOffsets(t, cl, catalog.WishlistChanges); after != logBefore+1 {
		t.Fatalf("two clicks wrote %d changelog records, want 1", after-logBefore)
	}

	// Scope all, signed by the older key still listed, sent as multipart
	// (RFC 8058 allows either form encoding), for a user with no
	// preferences yet.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("List-Unsubscribe", "One-Click")
	_ = mw.Close()
	if status, body := c.page("POST", link(oldOnly, bob, unsubscribe.ScopeAll), mw.FormDataContentType(), mp.String()); status != 200 {
		t.Fatalf("unsubscribe all: %d %s", status, body)
	}
	if got := c.prefs(bob); got["unsubscribed"] != true {
		t.Fatalf("preferences after unsubscribing from all = %v", got)
	}
}

// TestUnsubscribeNotConfigured: without UNSUBSCRIBE_KEYS the routes do not
// answer 404, and a bad key list is a configuration error naming the variable.
func TestUnsubscribeNotConfigured(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	c := client{t: t, base: startServe(t, baseConfig(t, kcfg, r.URL()))}
	if status, _ := c.page("POST", unsubscribe.Path+"?token=x", "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); status != 404 {
		t.Fatalf("unsubscribe without keys: %d, want 404", status)
	}
	cfg := baseConfig(t, kcfg, r.URL())
	cfg.UnsubscribeKeys = "k1:short"
	if err := cfg.ValidateServe(); err == nil || !strings.Contains(err.Error(), "UNSUBSCRIBE_KEYS") || strings.Contains(err.Error(), "short") {
		t.Fatalf("ValidateServe = %v, want an UNSUBSCRIBE_KEYS problem without the secret", err)
	}
}

// TestOptOutRecordFollowsPreferences: every preferences change (the PUT,
// a one-click unsubscribe, scope all) has written the user's opt-out
// record (topics/optout) by the time it answers 2xx, the one the notifier
// and the gateway read; opting back in deletes it; a click that finds the
// user already unsubscribed writes a record that went missing.
func TestOptOutRecordFollowsPreferences(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	cfg := baseConfig(t, kcfg, r.URL())
	cfg.UnsubscribeKeys = "new:" + unsubSecret
	c := client{t: t, base: startServe(t, cfg)}
	keys, _ := unsubscribe.ParseKeys(cfg.UnsubscribeKeys)
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	user := testenv.Unique(t, "carol")
	record := func() string {
		t.Helper()
		v, err := rdb.Get(context.Background(), optout.Key(user)).Result()
		if errors.Is(err, redis.Nil) {
			return "(none)"
		}
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	click := func(scope string) {
		t.Helper()
		u, err := keys.URL("", user, scope)
		if err != nil {
			t.Fatal(err)
		}
		if status, body := c.page("POST", u, "application/x-www-form-urlencoded", "List-Unsubscribe=One-Click"); status != 200 {
			t.Fatalf("unsubscribe %s: %d %s", scope, status, body)
		}
	}
	put := func(body string) {
		t.Helper()
		if code := c.do("PUT", "/v1/users/"+user+"/preferences", token, "application/json", body, nil); code != 200 {
			t.Fatalf("put preferences %s: %d", body, code)
		}
	}

	if got := record(); got != "(none)" {
		t.Fatalf("record before any preferences: %q", got)
	}
	put(`{"channels":["app","email","sms"],"opt_out":["sms"]}`)
	if got := record(); got != "sms" {
		t.Fatalf("record after opting out of sms: %q", got)
	}
	click("email")
	if got := record(); got != "email,sms" {
		t.Fatalf("record after the email one-click: %q", got)
	}
	click(unsubscribe.ScopeAll)
	if got := record(); got != "all" {
		t.Fatalf("record after unsubscribing from all: %q", got)
	}
	// A record lost (or never written, from before records existed): the
	// next click finds the user unsubscribed already and writes it again.
	if err := rdb.Del(context.Background(), optout.Key(user)).Err(); err != nil {
		t.Fatal(err)
	}
	click(unsubscribe.ScopeAll)
	if got := record(); got != "all" {
		t.Fatalf("record after a repeated click: %q", got)
	}
	// Opted back in: no record, so nothing is suppressed any more.
	put(`{"channels":["app","email","sms"]}`)
	if got := record(); got != "(none)" {
		t.Fatalf("record after opting back in: %q", got)
	}
}
