package demo

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"go.uber.org/zap"

	"backinstock/topics/events"
)

func TestDataIsDeterministicValidAndSpreadAcrossRegions(t *testing.T) {
	d := DefaultData([]string{"us-east-1", "eu-west-1", "ap-south-1"}, []string{"app", "web", "email", "sms"})
	count := func() (n int, perRegion map[string]int, perChannel map[string]int) {
		perRegion, perChannel = map[string]int{}, map[string]int{}
		_ = d.Entries(func(e Entry) error {
			n++
			perRegion[e.Region]++
			for _, c := range e.Channels {
				perChannel[c]++
			}
			for _, id := range []string{e.UserID, e.SKU, e.Region} {
				if !events.ValidID(id) {
					t.Fatalf("entry %+v has an invalid id %q", e, id)
				}
			}
			if e.Region != d.RegionOf(e.UserID) || len(e.Channels) == 0 || e.Channels[0] != "app" {
				t.Fatalf("entry %+v", e)
			}
			return nil
		})
		return
	}
	n1, regions, channels := count()
	n2, _, _ := count()
	if n1 != n2 || n1 < d.Users {
		t.Fatalf("entries %d then %d for %d users", n1, n2, d.Users)
	}
	for _, r := range d.Regions {
		if regions[r] == 0 {
			t.Errorf("no entries in %s", r)
		}
	}
	for _, c := range d.Channels {
		if channels[c] == 0 {
			t.Errorf("nobody chose %s", c)
		}
	}
	if d.RegionOf("stranger") != "" || d.RegionOf(UserID(d.Users)) != "" {
		t.Fatal("strangers have no region")
	}
	if got := d.Showcase(); len(got) != 30 || got[0].UserID != "user-00000" {
		t.Fatalf("showcase %v", got)
	}
}

func TestScrapeSumsStagesAcrossServices(t *testing.T) {
	page := func(body string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, body) }))
	}
	a := page("# TYPE backinstock_notifier_sent_total counter\nbackinstock_notifier_sent_total{channel=\"app\"} 3\nbackinstock_notifier_sent_total{channel=\"sms\"} 2\n")
	defer a.Close()
	b := page("# TYPE backinstock_notifier_sent_total counter\nbackinstock_notifier_sent_total{channel=\"app\"} 5\n# TYPE backinstock_inventory_restocks_total counter\nbackinstock_inventory_restocks_total 4\n")
	defer b.Close()
	got := Scrape(context.Background(), http.DefaultClient, []string{a.URL, b.URL, "http://127.0.0.1:1/metrics"})
	if got["sent"] != 10 || got["restocks"] != 4 || got["held"] != 0 {
		t.Fatalf("stats %v", got)
	}
}

func TestSkusAsksOncePerSKUAndHidesEmptyRegions(t *testing.T) {
	calls := 0
	wl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Query().Has("region") {
			t.Errorf("request %s %v", r.URL, r.Header)
		}
		_, _ = io.WriteString(w, `{"sku":"x","counts":{"us-east-1":3,"eu-west-1":0},"total":3}`)
	}))
	defer wl.Close()
	d := DefaultData([]string{"us-east-1", "eu-west-1"}, []string{"app"})
	srv := New(Config{WishlistURL: wl.URL, APIToken: "tok", Regions: d.Regions, Data: d}, zap.NewNop())
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/api/skus", nil))
	if calls != len(d.Products) {
		t.Fatalf("%d calls for %d skus", calls, len(d.Products))
	}
	var rows []struct {
		Region      string `json:"region"`
		Wishlisters int64  `json:"wishlisters"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(d.Products) || rows[0].Region != "us-east-1" || rows[0].Wishlisters != 3 {
		t.Fatalf("rows %+v", rows)
	}
}
