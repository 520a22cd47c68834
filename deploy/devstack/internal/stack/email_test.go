package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"backinstock/deploy/devstack/internal/demo"
	"backinstock/shared/testenv"
	"backinstock/topics/clicklink"
)

// mailTo lists the ids of the messages Mailpit holds for address, each
// once (testenv's listing keeps one that the still-arriving emails of a
// restock moved from one page to the next once; counting it twice failed
// this test in CI).
func mailTo(t *testing.T, base, address string) []string {
	t.Helper()
	ms, err := testenv.MailpitAt(base).Search(context.Background(), `to:"`+address+`"`)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range ms {
		for _, to := range m.To {
			if to.Address == address {
				ids = append(ids, m.ID)
			}
		}
	}
	return ids
}

func getJSON(t *testing.T, url string, out any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func putStock(t *testing.T, env map[string]string, sku, region string, qty int) {
	t.Helper()
	body := fmt.Sprintf(`{"region":%q,"quantity":%d}`, region, qty)
	req, _ := http.NewRequest(http.MethodPut, env["INVENTORY_URL"]+"/v1/stock/"+sku, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+env["API_TOKEN"])
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT stock %s %s %d: %d %s", sku, region, qty, resp.StatusCode, b)
	}
}

// checkTrackedLink follows the product link of Mailpit's message id as a
// mail client does (GET, no cookies, the redirect read, not followed): a
// 302 to the product and one unique click on the engagement service; a
// second follow makes total 2, unique 1; the link tampered with is a 404
// with no Location.
func checkTrackedLink(t *testing.T, env map[string]string, id string) {
	t.Helper()
	var msg struct{ Text, HTML string }
	getJSON(t, env["MAILPIT_URL"]+"/api/v1/message/"+id, &msg)
	m := regexp.MustCompile(regexp.QuoteMeta(env["ENGAGEMENT_URL"]) + `/c/([A-Za-z0-9._-]+)`).FindStringSubmatch(msg.Text)
	if m == nil || !strings.Contains(msg.HTML, m[0]) {
		t.Fatalf("no tracked link to %s in the email:\n%s", env["ENGAGEMENT_URL"], msg.Text)
	}
	keys, err := clicklink.ParseKeys(env["CLICK_KEYS"])
	if err != nil {
		t.Fatal(err)
	}
	c, err := keys.Verify(m[1], time.Now())
	if err != nil {
		t.Fatal(err)
	}
	mailClient := &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	follow := func(u string) *http.Response {
		resp, err := mailClient.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	counts := func() (total, unique int) {
		req, _ := http.NewRequest(http.MethodGet, env["ENGAGEMENT_URL"]+"/v1/notifications/"+c.NotificationID()+"/clicks", nil)
		req.Header.Set("Authorization", "Bearer "+env["API_TOKEN"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct{ Total, Unique int }
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("clicks: %d %v", resp.StatusCode, err)
		}
		return v.Total, v.Unique
	}
	for i, want := range [][2]int{{1, 1}, {2, 1}} {
		resp := follow(m[0])
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != c.URL || !strings.HasPrefix(c.URL, "http") {
			t.Fatalf("follow %d: %d Location %q, want 302 to %s", i+1, resp.StatusCode, resp.Header.Get("Location"), c.URL)
		}
		if total, unique := counts(); total != want[0] || unique != want[1] {
			t.Fatalf("after follow %d: total %d unique %d, want %v", i+1, total, unique, want)
		}
	}
	tampered := strings.Replace(m[0], "."+c.SKU+".", "."+c.SKU+"x.", 1)
	if resp := follow(tampered); resp.StatusCode != http.StatusNotFound || resp.Header.Get("Location") != "" {
		t.Fatalf("tampered link: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if total, _ := counts(); total != 2 {
		t.Fatalf("the tampered link counted: total %d", total)
	}
}

// TestRestockEmailsAndOneClickUnsubscribe runs the whole local stack: a
// restock through the inventory API reaches Mailpit as one email per demo
// user with the email channel, carrying List-Unsubscribe and
// List-Unsubscribe-Post; POSTing that URL (as a mail client does)
// unsubscribes the user from email, and the next restock of the same SKU
// sends that user nothing while the others get their second email. The
// emails' product links go through the engagement service
// (checkTrackedLink).
func TestRestockEmailsAndOneClickUnsubscribe(t *testing.T) {
	env, _ := sharedStack(t)

	// user-00000 and user-00012 both want sku-switch-oled in us-east-1
	// on every channel (demo.Data), email included.
	const sku, region = "sku-switch-oled", "us-east-1"
	leaver, stayer := demo.EmailOf(demo.UserID(0)), demo.EmailOf(demo.UserID(12))
	mp := env["MAILPIT_URL"]
	putStock(t, env, sku, region, 0)
	putStock(t, env, sku, region, 5)
	testenv.Eventually(t, 2*time.Minute, func() bool {
		return len(mailTo(t, mp, leaver)) == 1 && len(mailTo(t, mp, stayer)) == 1
	}, "an email each for %s and %s", leaver, stayer)

	checkTrackedLink(t, env, mailTo(t, mp, stayer)[0])

	var h map[string][]string
	getJSON(t, mp+"/api/v1/message/"+mailTo(t, mp, leaver)[0]+"/headers", &h)
	lu, post := h["List-Unsubscribe"], h["List-Unsubscribe-Post"]
	if len(lu) != 1 || !strings.HasPrefix(lu[0], "<"+env["WISHLIST_URL"]+"/v1/unsubscribe?token=") || len(post) != 1 || post[0] != "List-Unsubscribe=One-Click" {
		t.Fatalf("List-Unsubscribe %q, List-Unsubscribe-Post %q", lu, post)
	}
	// What a mail client does for a one-click unsubscribe (RFC 8058).
	resp, err := http.Post(strings.Trim(lu[0], "<>"), "application/x-www-form-urlencoded", strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), "You are unsubscribed") {
		t.Fatalf("one-click POST: %d %s", resp.StatusCode, page)
	}

	putStock(t, env, sku, region, 0)
	putStock(t, env, sku, region, 5)
	testenv.Eventually(t, 2*time.Minute, func() bool { return len(mailTo(t, mp, stayer)) == 2 }, "the second restock's email for %s", stayer)
	// The leaver's notification would have been fanned out with the
	// stayer's; give a straggler a moment to show before counting.
	time.Sleep(2 * time.Second)
	if ids := mailTo(t, mp, leaver); len(ids) != 1 {
		for _, id := range ids {
			var h map[string][]string
			getJSON(t, mp+"/api/v1/message/"+id+"/headers", &h)
			t.Logf("%s: Message-Id %q Subject %q Date %q", id, h["Message-Id"], h["Subject"], h["Date"])
		}
		t.Fatalf("%s got %d emails after unsubscribing, want the 1 from before", leaver, len(ids))
	}
}
