package events_test

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"

	"backinstock/topics/events"
)

func TestValidID(t *testing.T) {
	valid := []string{"a", "SKU-1", "user_42", strings.Repeat("Z", 128), "0"}
	invalid := []string{"", "a.b", "a*", "a>", "a b", "a|b", "a:b", "a{b}", "é", "a\n", strings.Repeat("Z", 129)}
	for _, s := range valid {
		if !events.ValidID(s) || events.CheckID("user_id", s) != nil {
			t.Errorf("ValidID(%q) = false, want true", s)
		}
	}
	for _, s := range invalid {
		if events.ValidID(s) {
			t.Errorf("ValidID(%q) = true, want false", s)
		}
		if err := events.CheckID("user_id", s); err == nil || !strings.HasPrefix(err.Error(), "user_id: ") {
			t.Errorf("CheckID(user_id, %q) = %v, want an error naming user_id", s, err)
		}
	}
}

func TestValidRegion(t *testing.T) {
	for _, s := range []string{"us-east-1", "eu-west-1", "ap-south-1", "local"} {
		if !events.ValidRegion(s) {
			t.Errorf("ValidRegion(%q) = false", s)
		}
	}
	for _, s := range []string{"", "US-EAST-1", "us_east_1", "us.east", "-us", "us-", "us--east", strings.Repeat("a", 65)} {
		if events.ValidRegion(s) {
			t.Errorf("ValidRegion(%q) = true", s)
		}
	}
}

func TestDeterministicIDs(t *testing.T) {
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:])[:32] }

	r := events.RestockEventID("SKU-1", "us-east-1", 3)
	if r != sum("restock|SKU-1|us-east-1|3") {
		t.Errorf("RestockEventID does not follow its documented recipe: %s", r)
	}
	n := events.NotificationID("u1", "SKU-1", "us-east-1", 3, "sms")
	if n != sum("notification|u1|SKU-1|us-east-1|3|sms") {
		t.Errorf("NotificationID does not follow its documented recipe: %s", n)
	}
	d := events.DeliveryEventID(n, 2, events.StatusSent)
	if d != sum("delivery|"+n+"|2|sent") {
		t.Errorf("DeliveryEventID does not follow its documented recipe: %s", d)
	}
	for _, id := range []string{r, n, d} {
		if !events.ValidID(id) || len(id) != 32 {
			t.Errorf("id %q is not a valid 32-character id", id)
		}
	}
	if r != events.RestockEventID("SKU-1", "us-east-1", 3) {
		t.Error("RestockEventID is not deterministic")
	}
	distinct := map[string]bool{
		r: true,
		events.RestockEventID("SKU-1", "us-east-1", 4): true,
		events.RestockEventID("SKU-1", "eu-west-1", 3): true,
		events.RestockEventID("SKU-2", "us-east-1", 3): true,
		n: true,
		events.NotificationID("u1", "SKU-1", "us-east-1", 3, "app"): true,
		events.NotificationID("u2", "SKU-1", "us-east-1", 3, "sms"): true,
		events.NotificationID("u1", "SKU-1", "us-east-1", 4, "sms"): true,
		d: true,
		events.DeliveryEventID(n, 3, events.StatusSent):   true,
		events.DeliveryEventID(n, 2, events.StatusFailed): true,
	}
	if len(distinct) != 11 {
		t.Errorf("ids collide: %v", distinct)
	}
}

func TestTraceparent(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tp := events.NewTraceparent()
		if !events.ValidTraceparent(tp) || !strings.HasPrefix(tp, "00-") || !strings.HasSuffix(tp, "-01") || len(tp) != 55 {
			t.Fatalf("NewTraceparent() = %q", tp)
		}
		seen[tp] = true
	}
	if len(seen) != 100 {
		t.Errorf("NewTraceparent repeated itself: %d distinct of 100", len(seen))
	}
	parent := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	child := events.ChildTraceparent(parent)
	if !events.ValidTraceparent(child) || child[:36] != parent[:36] || child == parent {
		t.Errorf("ChildTraceparent(%s) = %s: want the same trace id, a new span", parent, child)
	}
	if got := events.ChildTraceparent("garbage"); !events.ValidTraceparent(got) {
		t.Errorf("ChildTraceparent(garbage) = %q", got)
	}
	tests := []struct {
		s    string
		want bool
	}{
		{parent, true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", true},
		{"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", true},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra", false},
		{"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", false},
		{"00-00000000000000000000000000000000-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", false},
		{"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", false},
		{"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := events.ValidTraceparent(tt.s); got != tt.want {
			t.Errorf("ValidTraceparent(%q) = %v, want %v", tt.s, got, tt.want)
		}
	}
}

func TestHeaders(t *testing.T) {
	h := events.Headers(events.SchemaRestockEvent, "")
	if len(h) != 3 || h[0] != (events.Header{Key: "content-type", Value: "application/json"}) ||
		h[1] != (events.Header{Key: "schema", Value: "RestockEvent/1"}) ||
		h[2].Key != "traceparent" || !events.ValidTraceparent(h[2].Value) {
		t.Fatalf("Headers = %+v", h)
	}
	name, version, err := events.ParseSchemaHeader("Notification/1")
	if err != nil || name != events.SchemaNotification || version != 1 {
		t.Errorf("ParseSchemaHeader(Notification/1) = %s, %d, %v", name, version, err)
	}
	for _, bad := range []string{"", "Notification", "Nope/1", "Notification/0", "Notification/x"} {
		if _, _, err := events.ParseSchemaHeader(bad); err == nil {
			t.Errorf("ParseSchemaHeader(%q) accepted", bad)
		}
	}
}

// TestWishlistKeys checks the two key shapes of wishlist.changes.v1 never
// collide: no valid sku ends a key like a preferences key does.
func TestWishlistKeys(t *testing.T) {
	if got := events.PreferencesKey("user_42"); got != "user_42|~prefs" {
		t.Fatalf("PreferencesKey = %q", got)
	}
	if got := events.WishlistKey("user_42", "SKU-1"); got != "user_42|SKU-1" {
		t.Fatalf("WishlistKey = %q", got)
	}
	if user, ok := events.PreferencesUser(events.PreferencesKey("user_42")); !ok || user != "user_42" {
		t.Fatalf("PreferencesUser(PreferencesKey) = %q, %v", user, ok)
	}
	for _, sku := range []string{"prefs", "_prefs", "-prefs", "SKU-1"} {
		if !events.ValidID(sku) {
			t.Fatalf("test sku %q is not valid", sku)
		}
		if _, ok := events.PreferencesUser(events.WishlistKey("user_42", sku)); ok {
			t.Errorf("WishlistKey(user_42, %s) parses as a preferences key", sku)
		}
	}
	if events.ValidID("~prefs") {
		t.Error(`"~prefs" is a valid id: a sku could collide with the preferences key`)
	}
	if name, v, err := events.ParseSchemaHeader("WishlistPreferences/1"); err != nil || name != events.SchemaWishlistPreferences || v != 1 {
		t.Errorf("ParseSchemaHeader(WishlistPreferences/1) = %q, %d, %v", name, v, err)
	}
}

func TestParseStockKey(t *testing.T) {
	tests := []struct {
		key         string
		sku, region string
		ok          bool
	}{
		{events.StockKey("SKU-1", "us-east-1"), "SKU-1", "us-east-1", true},
		{"sku|local", "sku", "local", true},
		{"sku", "", "", false},
		{"|us-east-1", "", "", false},
		{"sku|", "", "", false},
		{"a|b|us-east-1", "", "", false},
		{"sku|US-EAST-1", "", "", false},
	}
	for _, tt := range tests {
		sku, region, ok := events.ParseStockKey(tt.key)
		if sku != tt.sku || region != tt.region || ok != tt.ok {
			t.Errorf("ParseStockKey(%q) = %q, %q, %v; want %q, %q, %v", tt.key, sku, region, ok, tt.sku, tt.region, tt.ok)
		}
	}
}
