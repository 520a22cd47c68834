package testenv_test

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

// TestWebhookReceiverRefusesWhatTheSpecRefuses: the receiver accepts a
// request signed as the Standard Webhooks spec says and refuses a wrong
// secret, a stale or future timestamp, a missing header, an
// Idempotency-Key or body that does not match the webhook-id.
func TestWebhookReceiverRefusesWhatTheSpecRefuses(t *testing.T) {
	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	other := "whsec_" + base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))
	rcv := testenv.NewWebhookReceiver(t, secret)
	n := events.Notification{
		NotificationID: events.NotificationID("alice", "SKU-1", "us-east-1", 1, "app"), RestockEventID: events.RestockEventID("SKU-1", "us-east-1", 1),
		UserID: "alice", SKU: "SKU-1", Region: "us-east-1", Channel: "app", Episode: 1, Title: "Kettle", Body: "Back.", URL: "https://shop.example/p/1",
		CreatedAt: time.Now().UTC().Truncate(time.Second),
	}
	body, err := events.Encode(events.NewWebhookEvent(n))
	if err != nil {
		t.Fatal(err)
	}
	type req struct {
		secrets []string
		ts      time.Time
		id, key string
		body    []byte // sent; the signature is over the original
		drop    string
	}
	good := req{secrets: []string{other, secret}, ts: time.Now(), id: n.NotificationID, key: n.NotificationID, body: body}
	with := func(f func(*req)) req { r := good; f(&r); return r }
	cases := []struct {
		name string
		r    req
		want int
	}{
		{"signed with its secret among others", good, http.StatusNoContent},
		{"the same again (a duplicate)", good, http.StatusNoContent},
		{"another secret only", with(func(r *req) { r.secrets = []string{other} }), http.StatusBadRequest},
		{"timestamp 6 minutes old", with(func(r *req) { r.ts = time.Now().Add(-6 * time.Minute) }), http.StatusBadRequest},
		{"timestamp 6 minutes ahead", with(func(r *req) { r.ts = time.Now().Add(6 * time.Minute) }), http.StatusBadRequest},
		{"no webhook-signature", with(func(r *req) { r.drop = standardwebhooks.HeaderWebhookSignature }), http.StatusBadRequest},
		{"Idempotency-Key differs", with(func(r *req) { r.key = "other" }), http.StatusBadRequest},
		{"body of another notification", with(func(r *req) { r.id, r.key = "other-id", "other-id" }), http.StatusBadRequest},
		{"body changed after signing", with(func(r *req) { r.body = bytes.Replace(body, []byte("Kettle"), []byte("Kettle!"), 1) }), http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sigs []string
			for _, s := range c.r.secrets {
				w, err := standardwebhooks.NewWebhook(s)
				if err != nil {
					t.Fatal(err)
				}
				sig, err := w.Sign(c.r.id, c.r.ts, body) // what is sent may differ
				if err != nil {
					t.Fatal(err)
				}
				sigs = append(sigs, sig)
			}
			hr, _ := http.NewRequest(http.MethodPost, rcv.URL, bytes.NewReader(c.r.body))
			hr.Header.Set("Content-Type", "application/json")
			hr.Header.Set(standardwebhooks.HeaderWebhookID, c.r.id)
			hr.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(c.r.ts.Unix(), 10))
			hr.Header.Set(standardwebhooks.HeaderWebhookSignature, strings.Join(sigs, " "))
			hr.Header.Set("Idempotency-Key", c.r.key)
			if c.r.drop != "" {
				hr.Header.Del(c.r.drop)
			}
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != c.want {
				t.Errorf("status %d, want %d", resp.StatusCode, c.want)
			}
		})
	}
	distinct, dups, requests := rcv.Counts()
	if distinct != 1 || dups != 1 || requests != len(cases) || len(rcv.Rejected()) != len(cases)-2 {
		t.Errorf("counts %d distinct, %d duplicates, %d requests, %d rejected", distinct, dups, requests, len(rcv.Rejected()))
	}
}
