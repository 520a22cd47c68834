package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"backinstock/services/notifier/internal/notifiertest"
	"backinstock/shared/testenv"
)

// adminCall sends method path to the service at addr, held to its OpenAPI
// document, and answers the status and the JSON body.
func adminCall(t *testing.T, addr, method, path, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: &testenv.Contract{Doc: "../openapi.yaml"}}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func pausedChannels(m map[string]any) []string {
	var out []string
	ps, _ := m["paused"].([]any)
	for _, p := range ps {
		out = append(out, p.(map[string]any)["channel"].(string))
	}
	return out
}

// TestOperatorPauseStopsBothReplicas: two replicas of one region share the
// group; a pause sent to one stops the edge for both within a second of
// its answer (the count at the edge stands still from then on), the other
// shows it; a bad body or a missing token changes nothing; a resume sent
// to the other drains the rest, every notification once.
func TestOperatorPauseStopsBothReplicas(t *testing.T) {
	t.Parallel()
	f := newFixture(t, []string{"app"}, nil)
	const n = 600
	produce(t, f, notifiertest.Many(f.region, f.chans, n, "sku-p", time.Now()))
	cfg := f.config()
	cfg.APIToken = "secret"
	// Slow enough that the pause lands mid-run: 2 × 100/s.
	cfg.RateLimits = "app=100:10"
	a, b := f.start(t, cfg), f.start(t, cfg)

	body := `{"region":"` + f.region + `","channel":"app","operator":"ops-alice","reason":"bad template"}`
	for _, bad := range []struct {
		token, body string
		status      int
	}{
		{"", body, http.StatusUnauthorized},
		{"wrong", body, http.StatusUnauthorized},
		{"secret", `{"region":"` + f.region + `","channel":"fax"}`, http.StatusBadRequest},
		{"secret", `{"region":"eu-west-9","channel":"app"}`, http.StatusBadRequest},
	} {
		if code, m := adminCall(t, a.addr, "POST", "/v1/admin/pause", bad.token, bad.body); code != bad.status {
			t.Fatalf("pause with token %q body %s: %d %v, want %d", bad.token, bad.body, code, m, bad.status)
		}
	}
	if code, m := adminCall(t, b.addr, "GET", "/v1/admin/pause", "secret", ""); code != http.StatusOK || len(pausedChannels(m)) != 0 {
		t.Fatalf("refused requests paused something: %d %v", code, m)
	}
	f.waitEdge(t, 60, 90*time.Second) // a loaded machine: joining the group can take long

	code, m := adminCall(t, a.addr, "POST", "/v1/admin/pause", "secret", body)
	answered := time.Now()
	if code != http.StatusOK || strings.Join(pausedChannels(m), ",") != "app" {
		t.Fatalf("pause: %d %v", code, m)
	}
	time.Sleep(time.Until(answered.Add(time.Second)))
	ctx := context.Background()
	at1s, err := notifiertest.StreamMsgs(ctx, f.js, f.region)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*running{a, b} {
		if got := metric(r.reg, "backinstock_notifier_paused", "channel", "app"); got != 1 {
			t.Errorf("a replica's paused gauge is %v a second after the pause, want 1", got)
		}
	}
	code, m = adminCall(t, b.addr, "GET", "/v1/admin/pause", "secret", "")
	if ps, _ := m["paused"].([]any); code != http.StatusOK || len(ps) != 1 || ps[0].(map[string]any)["operator"] != "ops-alice" || ps[0].(map[string]any)["reason"] != "bad template" {
		t.Fatalf("state on the other replica: %d %v", code, m)
	}
	time.Sleep(1500 * time.Millisecond) // the edge must stand still meanwhile
	later, err := notifiertest.StreamMsgs(ctx, f.js, f.region)
	if err != nil {
		t.Fatal(err)
	}
	if later != at1s || at1s >= n {
		t.Fatalf("edge held %d a second after the pause's answer and %d 1.5 s later (of %d): the pause did not hold both replicas", at1s, later, n)
	}
	t.Logf("paused with %d of %d at the edge", at1s, n)

	code, m = adminCall(t, b.addr, "POST", "/v1/admin/resume", "secret", `{"region":"`+f.region+`"}`)
	if code != http.StatusOK || len(pausedChannels(m)) != 0 {
		t.Fatalf("resume: %d %v", code, m)
	}
	f.waitCommitted(t, 60*time.Second)
	a.stop()
	b.stop()
	f.assertExactlyOnce(t, n)
	if metric(a.reg, "backinstock_notifier_paused", "channel", "app") != 0 || metric(b.reg, "backinstock_notifier_paused", "channel", "app") != 0 {
		t.Error("paused gauge still 1 after the resume")
	}
}
