package stack_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"backinstock/deploy/devstack/internal/demo"
	"backinstock/deploy/devstack/internal/stack"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// freeRange finds n consecutive free ports for HTTPPortBase.
func freeRange(t *testing.T, n int) int {
	t.Helper()
	for base := 20000 + rand.IntN(30000); base < 60000; base += n {
		free := true
		for p := base; p < base+n && free; p++ {
			l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if free = err == nil; free {
				l.Close()
			}
		}
		if free {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports", n)
	return 0
}

type mailpitList struct {
	Total    int
	Messages []struct {
		ID string
		To []struct{ Address string }
	}
}

// mailTo lists the ids of the messages Mailpit holds for address.
func mailTo(t *testing.T, base, address string) []string {
	t.Helper()
	var ids []string
	for start := 0; ; {
		var page mailpitList
		getJSON(t, base+"/api/v1/messages?limit=500&start="+strconv.Itoa(start), &page)
		for _, m := range page.Messages {
			for _, to := range m.To {
				if to.Address == address {
					ids = append(ids, m.ID)
				}
			}
		}
		start += len(page.Messages)
		if len(page.Messages) == 0 || start >= page.Total {
			return ids
		}
	}
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

// TestRestockEmailsAndOneClickUnsubscribe runs the whole local stack: a
// restock through the inventory API reaches Mailpit as one email per demo
// user with the email channel, carrying List-Unsubscribe and
// List-Unsubscribe-Post; POSTing that URL (as a mail client does)
// unsubscribes the user from email, and the next restock of the same SKU
// sends that user nothing while the others get their second email.
func TestRestockEmailsAndOneClickUnsubscribe(t *testing.T) {
	dir := t.TempDir()
	p := freePorts(t, 8)
	cfg := stack.Config{
		DataDir:    dir,
		KafkaPorts: []string{strconv.Itoa(p[0]), strconv.Itoa(p[1]), strconv.Itoa(p[2])},
		NATSPort:   p[3], NATSWSPort: p[4], RedisPort: p[5], MailpitSMTPPort: p[6], MailpitPort: p[7],
		HTTPPortBase: freeRange(t, 40), Regions: catalog.DefaultRegions,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stack.Run(ctx, cfg, zap.NewNop(), io.Discard) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("stack: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("stack did not stop")
		}
	})
	envPath := filepath.Join(dir, "devstack.env")
	testenv.Eventually(t, 5*time.Minute, func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("stack stopped: %v", err)
		default:
		}
		_, err := os.Stat(envPath)
		return err == nil
	}, "devstack.env written")
	b, _ := os.ReadFile(envPath)
	env := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}

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
	if n := len(mailTo(t, mp, leaver)); n != 1 {
		t.Fatalf("%s got %d emails after unsubscribing, want the 1 from before", leaver, n)
	}
}
