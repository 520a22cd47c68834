package aggkeys_test

import (
	"strings"
	"testing"
	"time"

	"backinstock/services/engagement/internal/aggkeys"
)

func TestDayIsTheUTCDay(t *testing.T) {
	at := time.Date(2026, 12, 1, 1, 30, 0, 0, time.FixedZone("x", 5*3600)) // 2026-11-30 20:30 UTC
	if got := aggkeys.Day(at); got != "20261130" {
		t.Fatalf("Day = %q, want 20261130", got)
	}
}

func TestKeysShareTheSKUSlotAndRoundTrip(t *testing.T) {
	if got := aggkeys.Attribution("sku-1", "us-east-1", "email", "20261130"); got != "engagement:attr:{sku-1}:us-east-1:email:20261130" {
		t.Fatalf("Attribution = %q", got)
	}
	sku, region, channel, ok := aggkeys.ParseIndexMember(aggkeys.IndexMember("sku-1", "us-east-1", "email"))
	if !ok || sku != "sku-1" || region != "us-east-1" || channel != "email" {
		t.Fatalf("ParseIndexMember = %q %q %q %v", sku, region, channel, ok)
	}
	for _, bad := range []string{"", "a|b", "a||c", "a|b|c|d"} {
		if _, _, _, ok := aggkeys.ParseIndexMember(bad); ok {
			t.Errorf("ParseIndexMember(%q) ok, want not", bad)
		}
	}
}

func TestRevenueFieldsNameKindAndCurrency(t *testing.T) {
	for field, want := range map[string][2]string{
		aggkeys.DirectRevenue("EUR"):   {"direct", "EUR"},
		aggkeys.AssistedRevenue("USD"): {"assisted", "USD"},
	} {
		kind, cur, ok := aggkeys.RevenueCurrency(field)
		if !ok || kind != want[0] || cur != want[1] {
			t.Errorf("RevenueCurrency(%q) = %q %q %v", field, kind, cur, ok)
		}
	}
	for _, f := range []string{aggkeys.DirectOrders, "other_revenue:EUR", "direct_revenue:"} {
		if _, _, ok := aggkeys.RevenueCurrency(f); ok {
			t.Errorf("RevenueCurrency(%q) ok, want not", f)
		}
	}
}

// TestReportKeysShareTheSKUSlot: every report key of a SKU carries the SKU
// as its hash tag (one Lua script touches them together), and every one
// starts with ReportPrefix (the rebuild wipes them by it).
func TestReportKeysShareTheSKUSlot(t *testing.T) {
	for _, k := range []string{
		aggkeys.Report("sku-1", "us-east-1", "email", "20261130"), aggkeys.Restocks("sku-1", "us-east-1", "20261130"),
		aggkeys.RestockTimes("sku-1", "us-east-1"), aggkeys.NotificationState("sku-1", "n1"), aggkeys.ClickSeen("sku-1", "e1"),
		aggkeys.Wishes("sku-1"), aggkeys.Waiting("sku-1"), aggkeys.Stock("sku-1"),
	} {
		if !strings.HasPrefix(k, aggkeys.ReportPrefix) || !strings.Contains(k, "{sku-1}") || strings.Index(k, "{") != strings.Index(k, "{sku-1}") {
			t.Errorf("key %q: want prefix %q and the hash tag {sku-1} first", k, aggkeys.ReportPrefix)
		}
	}
	sku, region, ok := aggkeys.ParseSoldOutMember(aggkeys.SoldOutMember("sku-1", "eu-west-1"))
	if !ok || sku != "sku-1" || region != "eu-west-1" {
		t.Fatalf("ParseSoldOutMember = %q %q %v", sku, region, ok)
	}
	for _, bad := range []string{"", "a", "|b", "a|", "a|b|c"} {
		if _, _, ok := aggkeys.ParseSoldOutMember(bad); ok {
			t.Errorf("ParseSoldOutMember(%q) ok", bad)
		}
	}
}
