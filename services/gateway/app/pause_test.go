package app_test

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"backinstock/services/gateway/app"
	"backinstock/services/gateway/internal/webhook"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

// admin sends method path to the gateway, held to its OpenAPI document,
// and answers the status and the JSON body.
func (g *gateway) admin(method, path, token, body string) (int, map[string]any) {
	g.t.Helper()
	req, _ := http.NewRequest(method, "http://"+g.addr+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: &testenv.Contract{Doc: "../openapi.yaml"}}).Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// TestOperatorPauseStopsSends: two gateway replicas of one region deliver
// email through the webhook provider, slowed by a shared rate limit; a
// pause sent to one stops the requests at the provider within a second of
// its answer, for both; a bad body or a missing token changes nothing;
// a resume sent to the other drains the rest, each notification once,
// with one sent receipt each.
func TestOperatorPauseStopsSends(t *testing.T) {
	secret := newSecret(t)
	rcv := testenv.NewWebhookReceiver(t, secret)
	k := env.Kafka(t)
	g := newRegion(t)
	g.cfg = app.Config{
		Kafka: kafka.Config{Brokers: k.Brokers}, RedisURL: env.Redis(t).URL(), NATSURL: env.NATS(t).URL(),
		Region: g.region, HTTPAddr: "127.0.0.1:0", StatusTopic: g.topic, APIToken: "secret",
		Channels: []string{events.ChannelEmail}, ProviderSpec: "email=webhook", RateLimits: "webhook=100/s",
		Webhook: webhook.Config{URL: rcv.URL, Secrets: []string{secret}, Timeout: 2 * time.Second},
		AckWait: 5 * time.Second, MaxBackoff: 20 * time.Second, RetryDelay: 200 * time.Millisecond, MaxAttempts: 30,
		Workers: 4, StopTimeout: 10 * time.Second,
	}
	a, b := g, g.replica()
	a.start()
	b.start()
	const n = 300
	for i := range n {
		g.publish(g.notification("u" + strconv.Itoa(i)))
	}
	body := `{"region":"` + g.region + `","channel":"email","operator":"ops-bob","reason":"provider outage"}`
	for _, bad := range []struct {
		token, body string
		status      int
	}{
		{"", body, http.StatusUnauthorized},
		{"secret", `{"region":"` + g.region + `","channel":"email","until":"never"}`, http.StatusBadRequest},
		{"secret", `{"channel":"email"}`, http.StatusBadRequest},
	} {
		if code, m := a.admin("POST", "/v1/admin/pause", bad.token, bad.body); code != bad.status {
			t.Fatalf("pause with token %q body %s: %d %v, want %d", bad.token, bad.body, code, m, bad.status)
		}
	}
	if code, m := b.admin("GET", "/v1/admin/pause", "secret", ""); code != http.StatusOK || len(m["paused"].([]any)) != 0 {
		t.Fatalf("refused requests paused something: %d %v", code, m)
	}
	testenv.Eventually(t, 90*time.Second, func() bool { d, _, _ := rcv.Counts(); return d >= 30 }, "first webhooks")

	code, m := a.admin("POST", "/v1/admin/pause", "secret", body)
	answered := time.Now()
	if ps, _ := m["paused"].([]any); code != http.StatusOK || len(ps) != 1 {
		t.Fatalf("pause: %d %v", code, m)
	}
	time.Sleep(time.Until(answered.Add(time.Second)))
	_, _, at1s := rcv.Counts()
	if got := b.metric(`backinstock_gateway_paused{channel="email"`); got != 1 {
		t.Errorf("the other replica's paused gauge is %v a second after the pause, want 1", got)
	}
	code, m = b.admin("GET", "/v1/admin/pause", "secret", "")
	if ps, _ := m["paused"].([]any); code != http.StatusOK || len(ps) != 1 || ps[0].(map[string]any)["operator"] != "ops-bob" {
		t.Fatalf("state on the other replica: %d %v", code, m)
	}
	time.Sleep(1500 * time.Millisecond) // the provider must hear nothing meanwhile
	_, _, later := rcv.Counts()
	if later != at1s || at1s >= n {
		t.Fatalf("%d webhook requests a second after the pause's answer and %d 1.5 s later (of %d): the pause did not stop both replicas", at1s, later, n)
	}
	t.Logf("paused with %d of %d sent", at1s, n)

	code, m = b.admin("POST", "/v1/admin/resume", "secret", `{"region":"`+g.region+`","channel":"email"}`)
	if ps, _ := m["paused"].([]any); code != http.StatusOK || len(ps) != 0 {
		t.Fatalf("resume: %d %v", code, m)
	}
	testenv.Eventually(t, 60*time.Second, func() bool { d, _, _ := rcv.Counts(); return d >= n }, "drained after the resume")
	g.settled()
	noRejects(t, rcv)
	if distinct, dups, requests := rcv.Counts(); distinct != n || dups != 0 || requests != n {
		t.Errorf("receiver: %d distinct, %d duplicates, %d requests; want %d, 0, %d", distinct, dups, requests, n, n)
	}
	rs := g.waitReceipts(n)
	sent := map[string]int{}
	for _, r := range rs {
		if r.Status == events.StatusSent {
			sent[r.NotificationID]++
		}
	}
	if len(rs) != n || len(sent) != n {
		t.Errorf("%d receipts, %d notifications sent; want %d of each", len(rs), len(sent), n)
	}
	if got := a.metric(`backinstock_gateway_paused{channel="email"`); got != 0 {
		t.Errorf("paused gauge %v after the resume", got)
	}
}
