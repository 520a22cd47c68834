package app_test

// Component tests of the sms channel: `gateway run` in-process against
// the providertest Twilio stand-in, an embedded nats-server, redis-server
// and kfake.

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"backinstock/services/gateway/app"
	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/services/gateway/internal/providertest"
	"backinstock/services/gateway/internal/sms"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

const smsFrom = "+14155550100"

// newSMSGateway prepares a region (stream, receipts topic) whose gateway
// delivers the sms channel to tw; mut configures it. start runs it.
func newSMSGateway(t *testing.T, tw *providertest.Twilio, mut func(*app.Config)) *gateway {
	t.Helper()
	k := env.Kafka(t)
	g := newRegion(t)
	g.cfg = app.Config{
		Kafka: kafka.Config{Brokers: k.Brokers}, RedisURL: env.Redis(t).URL(), NATSURL: env.NATS(t).URL(),
		Region: g.region, HTTPAddr: "127.0.0.1:0", StatusTopic: g.topic,
		Channels: []string{events.ChannelSMS}, ProviderSpec: "sms=twilio",
		AckWait: 5 * time.Second, MaxBackoff: 20 * time.Second, RetryDelay: 200 * time.Millisecond, MaxAttempts: 30,
		Workers: 4, StopTimeout: 10 * time.Second,
		SMS: sms.Config{BaseURL: tw.URL, AccountSID: tw.AccountSID(), AuthToken: tw.AuthToken(), From: smsFrom, Timeout: 2 * time.Second},
	}
	if mut != nil {
		mut(&g.cfg)
	}
	return g
}

// replica is another gateway of g's region (same stream, Redis, topic).
func (g *gateway) replica() *gateway {
	return &gateway{t: g.t, region: g.region, js: g.js, topic: g.topic, cfg: g.cfg}
}

// smsNotification is an sms notification of user about SKU-42 to phone.
func (g *gateway) smsNotification(user, phone string) events.Notification {
	n := gatewaytest.Notification(g.region, user, "SKU-42", 3)
	n.Channel, n.Contact = events.ChannelSMS, phone
	n.NotificationID = events.NotificationID(user, "SKU-42", g.region, 3, events.ChannelSMS)
	return n
}

// phone is a distinct valid E.164 number per i.
func phone(i int) string { return "+49151" + strconv.Itoa(10_000_000+i) }

// settledOn waits until channel's consumer has nothing pending or
// unacknowledged.
func (g *gateway) settledOn(channel string) {
	g.t.Helper()
	cons, err := g.js.Consumer(context.Background(), topicsedge.StreamName(g.region, channel), topicsedge.GatewayConsumer(channel))
	if err != nil {
		g.t.Fatal(err)
	}
	testenv.Eventually(g.t, 60*time.Second, func() bool {
		info, err := cons.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, "messages still pending or unacknowledged")
}

// perKey counts the messages Twilio accepted per Idempotency-Key.
func perKey(msgs []providertest.TwilioMessage) map[string]int {
	out := map[string]int{}
	for _, m := range msgs {
		out[m.IdempotencyKey]++
	}
	return out
}

// TestSMSNotificationsBecomeMessages: N sms notifications are N messages
// at the provider, one each, with one sent receipt each naming Twilio's
// SID; a duplicate sends nothing and writes the same receipt again.
func TestSMSNotificationsBecomeMessages(t *testing.T) {
	tw := providertest.NewTwilio(t, providertest.TwilioOptions{From: []string{smsFrom}})
	g := newSMSGateway(t, tw, nil)
	g.start()
	const total = 20
	var ns []events.Notification
	for i := range total {
		n := g.smsNotification("u"+strconv.Itoa(i), phone(i))
		ns = append(ns, n)
		g.publish(n)
	}
	rs := g.waitReceipts(total)
	g.settledOn(events.ChannelSMS)

	msgs := tw.Messages()
	if len(msgs) != total {
		t.Fatalf("twilio accepted %d messages, want %d", len(msgs), total)
	}
	sidOf := map[string]providertest.TwilioMessage{}
	for _, m := range msgs {
		sidOf[m.IdempotencyKey] = m
	}
	for _, n := range ns {
		m, ok := sidOf[n.NotificationID]
		if !ok || m.To != n.Contact || m.Body != "Kettle SKU-42 is back in stock: "+n.URL || m.From != smsFrom {
			t.Errorf("%s: message %+v", n.NotificationID, m)
		}
	}
	for _, r := range rs {
		if r.Status != events.StatusSent || r.Provider != sms.ProviderName || r.ProviderMessageID != sidOf[r.NotificationID].SID ||
			r.Channel != events.ChannelSMS || r.Attempt != 1 {
			t.Errorf("receipt %+v", r)
		}
	}

	dup := ns[0]
	gatewaytest.Publish(t, g.js, dup, "replayed-copy")
	rs = g.waitReceipts(total + 1)
	g.settledOn(events.ChannelSMS)
	if n := len(tw.Messages()); n != total {
		t.Errorf("twilio accepted %d messages after the duplicate, want %d", n, total)
	}
	var again []events.DeliveryStatus
	for _, r := range rs {
		if r.NotificationID == dup.NotificationID {
			again = append(again, r)
		}
	}
	if len(again) != 2 || again[0] != again[1] {
		t.Errorf("the duplicate's receipt differs:%s", gatewaytest.Describe(again))
	}
	if got := g.metric(`backinstock_gateway_sent_total{channel="sms",provider="twilio"`); got != total {
		t.Errorf("sent_total %v, want %d", got, total)
	}
	if got := g.metric(`backinstock_gateway_sms_segments_total{encoding="GSM-7"`); got != total {
		t.Errorf("sms_segments_total %v, want %d", got, total)
	}
}

// heapInUse is the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestSMSProviderDownThen429: Twilio answers 503 to everything for a
// while, then 429 with Retry-After: 2, then accepts. Nothing is lost,
// nothing accepted twice (counted at the provider by Idempotency-Key), no
// notification is tried again before its Retry-After has passed, and the
// process' heap after the run is within 16 MiB of before it (the backlog
// waits in JetStream, not in the gateway; the embedded NATS and kfake
// live in this process too, so the bound is loose, not zero).
func TestSMSProviderDownThen429(t *testing.T) {
	tw := providertest.NewTwilio(t, providertest.TwilioOptions{})
	g := newSMSGateway(t, tw, nil)
	g.start()
	const total = 300
	tw.Fail(-1, providertest.TwilioReply{Status: http.StatusServiceUnavailable})
	before := heapInUse()
	for i := range total {
		g.publish(g.smsNotification("u"+strconv.Itoa(i), phone(i)))
	}
	count := func(status int) int {
		c := 0
		for _, r := range tw.Requests() {
			if r.Status == status {
				c++
			}
		}
		return c
	}
	testenv.Eventually(t, 60*time.Second, func() bool { return count(http.StatusServiceUnavailable) >= total }, "not every notification met the 503")
	tw.Fail(total, providertest.TwilioReply{Status: http.StatusTooManyRequests, RetryAfter: "2", Code: 20429})
	testenv.Eventually(t, 60*time.Second, func() bool { return count(http.StatusTooManyRequests) >= total }, "429s not all given")
	tw.Fail(0, providertest.TwilioReply{})
	rs := g.waitReceipts(total)
	g.settledOn(events.ChannelSMS)
	after := heapInUse()

	for key, c := range perKey(tw.Messages()) {
		if c != 1 {
			t.Errorf("%s accepted %d times", key, c)
		}
	}
	if n := len(tw.Messages()); n != total {
		t.Errorf("twilio accepted %d, want %d", n, total)
	}
	for _, r := range rs {
		if r.Status != events.StatusSent || r.Attempt < 2 {
			t.Errorf("receipt %+v", r)
		}
	}
	// Retry-After: after a 429 the same notification comes back no
	// sooner than 2 s later.
	last := map[string]providertest.TwilioRequest{}
	early := 0
	for _, r := range tw.Requests() {
		if p, ok := last[r.IdempotencyKey]; ok && p.Status == http.StatusTooManyRequests && r.At.Sub(p.At) < 2*time.Second {
			early++
			if early <= 3 {
				t.Errorf("%s tried %s after its 429 with Retry-After: 2", r.IdempotencyKey, r.At.Sub(p.At))
			}
		}
		last[r.IdempotencyKey] = r
	}
	if got := g.metric(`backinstock_gateway_retries_total{channel="sms",provider="twilio",reason="twilio_429"`); got < total {
		t.Errorf("retries_total{twilio_429} %v", got)
	}
	grew := int64(after) - int64(before)
	t.Logf("heap in use before %d KiB, after %d KiB (%+d KiB); %d requests", before>>10, after>>10, grew>>10, len(tw.Requests()))
	if grew > 16<<20 {
		t.Errorf("heap grew by %d KiB over the run", grew>>10)
	}
}

// TestSMSBadInput: a notification without a number, one whose number is
// malformed and one Twilio refuses as invalid (21211) each end with a
// failed receipt naming the reason, acknowledged; the ones after them are
// delivered.
func TestSMSBadInput(t *testing.T) {
	tw := providertest.NewTwilio(t, providertest.TwilioOptions{})
	tw.RejectTo("+15005550001", providertest.TwilioReply{Status: 400, Code: 21211, Message: "Invalid 'To' Phone Number: +15005550001"})
	g := newSMSGateway(t, tw, nil)
	g.start()
	none, malformed, invalid, good := g.smsNotification("none", ""), g.smsNotification("malformed", phone(1)),
		g.smsNotification("invalid", "+15005550001"), g.smsNotification("good", phone(2))
	g.publish(none)
	data, err := events.Encode(malformed)
	if err != nil {
		t.Fatal(err)
	}
	data = []byte(strings.Replace(string(data), malformed.Contact, "0151-not-e164", 1))
	gatewaytest.PublishRaw(t, g.js, topicsedge.Subject(g.region, events.ChannelSMS, "malformed"), data, "", malformed.NotificationID)
	g.publish(invalid)
	g.publish(good)
	rs := g.waitReceipts(4)
	g.settledOn(events.ChannelSMS)
	want := map[string]wantReceipt{
		none.NotificationID:      {events.StatusFailed, "no phone number"},
		malformed.NotificationID: {events.StatusFailed, "contact: must be an E.164 phone number"},
		invalid.NotificationID:   {events.StatusFailed, "21211"},
		good.NotificationID:      {events.StatusSent, ""},
	}
	checkFirstAttemptReceipts(t, rs, want)
	if msgs := tw.Messages(); len(msgs) != 1 || msgs[0].IdempotencyKey != good.NotificationID {
		t.Errorf("twilio accepted %+v, want the good one only", msgs)
	}
	for _, reason := range []string{"no_contact", "twilio_21211", "invalid"} {
		if got := g.metric(`backinstock_gateway_failed_total{channel="sms",provider="twilio",reason="` + reason + `"`); got != 1 {
			t.Errorf("failed_total{%s} %v", reason, got)
		}
	}
}

// TestRateLimitAcrossReplicas: three gateways of one region share
// twilio=50/s through Redis; 600 notifications reach the provider with no
// sliding one-second window, measured at the provider at every request,
// holding more than 50, and none is lost or sent twice.
func TestRateLimitAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("12 s at the limit")
	}
	tw := providertest.NewTwilio(t, providertest.TwilioOptions{})
	g := newSMSGateway(t, tw, func(c *app.Config) { c.RateLimits = "twilio=50/s" })
	replicas := []*gateway{g, g.replica(), g.replica()}
	for _, r := range replicas {
		r.start()
	}
	const total = 600
	for i := range total {
		g.publish(g.smsNotification("u"+strconv.Itoa(i), phone(i)))
	}
	testenv.Eventually(t, 90*time.Second, func() bool { return len(tw.Messages()) >= total }, "not all delivered")
	g.settledOn(events.ChannelSMS)

	var at []time.Time
	for _, r := range tw.Requests() {
		at = append(at, r.At)
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	most := providertest.MaxInWindow(at, time.Second)
	span := at[len(at)-1].Sub(at[0])
	t.Logf("%d requests over %s (%.1f/s); at most %d in any one-second window", len(at), span, float64(len(at)-1)/span.Seconds(), most)
	if most > 50 {
		t.Errorf("%d requests within one second at the provider, limit 50", most)
	}
	if len(at) != total {
		t.Errorf("%d requests, want %d (no failures were injected)", len(at), total)
	}
	for key, c := range perKey(tw.Messages()) {
		if c != 1 {
			t.Errorf("%s accepted %d times", key, c)
		}
	}
	// Each replica did some of the work and waited for the limit.
	var waits float64
	for i, r := range replicas {
		sent := r.metric(`backinstock_gateway_sent_total{channel="sms",provider="twilio"`)
		waits += r.metric(`backinstock_gateway_ratelimit_waits_total{provider="twilio"`)
		if sent == 0 {
			t.Errorf("replica %d sent nothing", i)
		}
	}
	if waits == 0 {
		t.Error("no rate-limit waits counted")
	}
}

// viaProxy sends a request addressed to the public URL to the gateway at
// addr, as an ingress that strips the public path prefix would.
func viaProxy(req *http.Request, addr, prefix string) {
	req.URL.Scheme, req.URL.Host = "http", addr
	req.URL.Path = strings.TrimPrefix(req.URL.Path, prefix)
	req.Host = ""
}

// TestSMSStatusCallback: Twilio's signed callbacks, reaching the gateway
// through a proxy (the public URL is not its listen address), become
// receipts: delivered, undelivered with its error code; a replay is the
// same event; sent is taken without a receipt; a wrong, missing or
// replayed-onto-another-notification signature is a 403 and writes
// nothing. Every answer is checked against openapi.yaml.
func TestSMSStatusCallback(t *testing.T) {
	tw := providertest.NewTwilio(t, providertest.TwilioOptions{})
	const public = "https://hooks.shop.example/gw"
	g := newSMSGateway(t, tw, func(c *app.Config) { c.PublicURL = public })
	g.start()
	a, b := g.smsNotification("alice", phone(1)), g.smsNotification("bert", phone(2))
	g.publish(a)
	g.publish(b)
	g.waitReceipts(2)
	msgs := map[string]providertest.TwilioMessage{}
	for _, m := range tw.Messages() {
		if !strings.HasPrefix(m.StatusCallback, public+sms.StatusPath+"?") {
			t.Fatalf("StatusCallback %q", m.StatusCallback)
		}
		msgs[m.IdempotencyKey] = m
	}
	client := &http.Client{Transport: &testenv.Contract{Doc: "../openapi.yaml"}}
	post := func(req *http.Request) (int, string) {
		t.Helper()
		viaProxy(req, g.addr, "/gw")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	callback := func(m providertest.TwilioMessage, status, code string) *http.Request {
		t.Helper()
		req, err := tw.CallbackRequest(m, status, code)
		if err != nil {
			t.Fatal(err)
		}
		return req
	}

	if code, body := post(callback(msgs[a.NotificationID], "sent", "")); code != http.StatusNoContent {
		t.Fatalf("sent: %d %s", code, body)
	}
	if code, body := post(callback(msgs[a.NotificationID], "delivered", "")); code != http.StatusNoContent {
		t.Fatalf("delivered: %d %s", code, body)
	}
	if code, body := post(callback(msgs[a.NotificationID], "delivered", "")); code != http.StatusNoContent {
		t.Fatalf("delivered again: %d %s", code, body)
	}
	if code, body := post(callback(msgs[b.NotificationID], "undelivered", "30003")); code != http.StatusNoContent {
		t.Fatalf("undelivered: %d %s", code, body)
	}
	rs := g.waitReceipts(5)

	var forbidden []*http.Request
	wrong := callback(msgs[b.NotificationID], "failed", "30008")
	wrong.Header.Set(sms.SignatureHeader, providertest.TwilioSignature("not-the-token", msgs[b.NotificationID].StatusCallback, nil))
	missing := callback(msgs[b.NotificationID], "failed", "30008")
	missing.Header.Del(sms.SignatureHeader)
	// a's signature on a URL that names b: the query is signed too.
	moved := callback(msgs[a.NotificationID], "failed", "30008")
	moved.URL.RawQuery = strings.Replace(moved.URL.RawQuery, "u=alice", "u=bert", 1)
	forbidden = append(forbidden, wrong, missing, moved)
	for i, req := range forbidden {
		code, body := post(req)
		if code != http.StatusForbidden || !strings.Contains(body, `"code":"forbidden"`) {
			t.Errorf("forged callback %d: %d %s", i, code, body)
		}
	}
	if got := len(g.receipts()); got != 5 {
		t.Errorf("%d receipts after the forged callbacks, want 5:%s", got, gatewaytest.Describe(g.receipts()))
	}

	var delivered, undelivered []events.DeliveryStatus
	for _, r := range rs {
		switch r.Status {
		case events.StatusDelivered:
			delivered = append(delivered, r)
		case events.StatusUndelivered:
			undelivered = append(undelivered, r)
		}
	}
	if len(delivered) != 2 || delivered[0].EventID != delivered[1].EventID ||
		delivered[0].EventID != events.DeliveryEventID(a.NotificationID, 1, events.StatusDelivered) ||
		delivered[0].ProviderMessageID != msgs[a.NotificationID].SID || delivered[0].Provider != "twilio" ||
		delivered[0].UserID != "alice" || delivered[0].SKU != "SKU-42" || delivered[0].Region != g.region {
		t.Errorf("delivered receipts:%s\n%+v", gatewaytest.Describe(delivered), delivered)
	}
	if len(undelivered) != 1 || !strings.Contains(undelivered[0].Reason, "30003") || undelivered[0].ProviderMessageID != msgs[b.NotificationID].SID {
		t.Errorf("undelivered receipts %+v", undelivered)
	}
	if got := g.metric(`backinstock_gateway_sms_callbacks_total{outcome="forbidden",`); got != 3 {
		t.Errorf("callbacks_total{forbidden} %v", got)
	}
	if got := g.metric(`backinstock_gateway_sms_callbacks_total{outcome="ignored",`); got != 1 {
		t.Errorf("callbacks_total{ignored} %v", got)
	}
}
