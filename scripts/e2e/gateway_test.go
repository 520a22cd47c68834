//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"backinstock/scripts/internal/e2eenv"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// unsubscribeKeys are the one-click unsubscribe keys the wishlist API and
// the gateway scenario's gateway share (UNSUBSCRIBE_KEYS).
const unsubscribeKeys = "e2e1:an-e2e-unsubscribe-secret-of-32-bytes-or-more"

// gatewayRegion has no fault scenario: little else reaches its edge.
const gatewayRegion = "ap-south-1"

// TestGatewayEmailWebhookAndOneClickUnsubscribe: a gateway process for one
// region, email over SMTP to Mailpit and the app channel through the
// webhook provider to a receiver that verifies every Standard Webhooks
// signature. A restock through the inventory API reaches Mailpit as one
// email per user with the product in it and the receiver as one webhook
// per user; POSTing one email's List-Unsubscribe URL (read from the
// message headers through Mailpit's API, as a mail client does) opts that
// user out of email, and the next restock of the sku sends the others
// their email and that user none (the webhook still goes out on app: the
// link unsubscribes from email only).
func TestGatewayEmailWebhookAndOneClickUnsubscribe(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	t0 := time.Now()
	c := stack.Client()
	mp := testenv.NewMailpit(t, testenv.MailpitOptions{})
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := "whsec_" + base64.StdEncoding.EncodeToString(key)
	rcv := testenv.NewWebhookReceiver(t, secret)
	host, port, _ := net.SplitHostPort(mp.SMTPAddr)
	if _, err := stack.StartGateway(ctx, gatewayRegion,
		"GATEWAY_CHANNELS=email,app", "GATEWAY_PROVIDERS=email=smtp,app=webhook",
		"EMAIL_FROM=Shop <shop@shop.example>", "SMTP_HOST="+host, "SMTP_PORT="+port, "SMTP_TLS=none",
		"UNSUBSCRIBE_KEYS="+unsubscribeKeys, "GATEWAY_UNSUBSCRIBE_BASE_URL=http://"+stack.Wishlist.Addr,
		"WEBHOOK_URL="+rcv.URL, "WEBHOOK_SECRETS="+secret,
		// A retry comes back within a second or two, not 2 s + ack wait.
		"GATEWAY_ACK_WAIT=5s", "GATEWAY_MAX_BACKOFF=20s", "GATEWAY_RETRY_DELAY=500ms", "SMTP_TIMEOUT=3s", "WEBHOOK_TIMEOUT=3s",
	); err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		if err := stack.StopGateway(gatewayRegion); err != nil {
			t.Errorf("stop gateway: %v", err)
		}
	})

	sku, prefix := unique("kettle"), unique("g")
	const users = 6
	var names []string
	for i := range users {
		u := fmt.Sprintf("%s-%d", prefix, i)
		names = append(names, u)
		if err := c.SetPreferences(ctx, u, e2eenv.Preferences{Contacts: map[string]string{"email": u + "@example.com"}}); err != nil {
			t.Fatal(err)
		}
		if err := c.AddWish(ctx, u, sku, gatewayRegion, []string{"email", "app"}); err != nil {
			t.Fatal(err)
		}
	}
	title := "Kettle " + sku
	restock := func() int64 {
		mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: gatewayRegion, Quantity: 0}, false)
		return mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: gatewayRegion, Quantity: 5,
			Product: &events.Product{Title: title, URL: "https://shop.example/p/" + sku, Price: "19.99"}}, true).Episode
	}
	// mails is the messages Mailpit holds per recipient.
	mails := func() map[string][]testenv.MailpitSummary {
		ms, err := mp.Messages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string][]testenv.MailpitSummary{}
		for _, m := range ms {
			for _, to := range m.To {
				out[strings.TrimSuffix(to.Address, "@example.com")] = append(out[strings.TrimSuffix(to.Address, "@example.com")], m)
			}
		}
		return out
	}
	hook := func(user string, episode int64) string {
		return events.NotificationID(user, sku, gatewayRegion, episode, events.ChannelApp)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(45 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s within 45s\nreceiver refused: %v\n%s", what, rcv.Rejected(), stack.Logs(30))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	ep1 := restock()
	waitFor("an email and a webhook per user", func() bool {
		m := mails()
		for _, u := range names {
			if len(m[u]) < 1 || rcv.Delivered(hook(u, ep1)) < 1 {
				return false
			}
		}
		return true
	})
	m := mails()
	for _, u := range names {
		if len(m[u]) != 1 || !strings.Contains(m[u][0].Subject, title) {
			t.Errorf("%s: emails %+v, want one about %s", u, m[u], title)
		}
		ev, _ := rcv.Event(hook(u, ep1))
		if ev.Data.UserID != u || ev.Data.SKU != sku || ev.Data.Title == "" || ev.Type != events.WebhookTypeBackInStock {
			t.Errorf("%s: webhook %+v", u, ev)
		}
	}
	full, err := mp.Message(ctx, m[names[1]][0].ID)
	if err != nil || !strings.Contains(full.Text, title) || !strings.Contains(full.HTML, "https://shop.example/p/"+sku) {
		t.Errorf("email body lacks the product (%v):\n%s", err, full.Text)
	}

	// One click, as a mail client does it (RFC 8058).
	leaver := names[0]
	h, err := mp.Headers(ctx, m[leaver][0].ID)
	if err != nil {
		t.Fatal(err)
	}
	lu := h["List-Unsubscribe"]
	if len(lu) != 1 || !strings.HasPrefix(lu[0], "<http://"+stack.Wishlist.Addr+unsubscribe.Path+"?") {
		t.Fatalf("List-Unsubscribe %q", lu)
	}
	resp, err := http.Post(strings.Trim(lu[0], "<>"), "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("one-click POST: %d %s", resp.StatusCode, page)
	}

	base := baselines(t, ctx)
	ep2 := restock()
	waitFor("the second restock's emails and webhooks", func() bool {
		m := mails()
		for _, u := range names {
			if rcv.Delivered(hook(u, ep2)) < 1 || (u != leaver && len(m[u]) < 2) {
				return false
			}
		}
		return true
	})
	// The leaver's email notification never reached the edge, so no
	// straggler can arrive after this check.
	got, err := edge.Collect(ctx, gatewayRegion, base[gatewayRegion], func(d *e2eenv.Delivered) bool { return d.SKU == sku })
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range got {
		if d.UserID == leaver && d.Channel == events.ChannelEmail {
			t.Errorf("the leaver's email notification of episode %d reached the edge", d.Episode)
		}
	}
	m = mails()
	for _, u := range names {
		want := 2
		if u == leaver {
			want = 1
		}
		if len(m[u]) != want {
			t.Errorf("%s: %d emails, want %d", u, len(m[u]), want)
		}
		for _, ep := range []int64{ep1, ep2} {
			if n := rcv.Delivered(hook(u, ep)); n != 1 {
				t.Errorf("%s: webhook of episode %d delivered %d times, want 1", u, ep, n)
			}
		}
	}
	if r := rcv.Rejected(); len(r) != 0 {
		t.Errorf("the receiver refused %d requests: %v", len(r), r[:min(len(r), 3)])
	}
	distinct := map[string]bool{}
	for _, msgs := range m {
		for _, x := range msgs {
			distinct[x.MessageID] = true
		}
	}
	if len(distinct) != 2*users-1 {
		t.Errorf("%d distinct Message-IDs, want %d", len(distinct), 2*users-1)
	}
	t.Logf("gateway scenario took %s", time.Since(t0).Round(time.Millisecond))
}
