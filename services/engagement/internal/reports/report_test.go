package reports

import (
	"reflect"
	"testing"
	"time"

	"backinstock/services/engagement/internal/aggkeys"
)

func f(v float64) *float64 { return &v }

// TestRowsGroupings: the same cells read three ways. Restocks count once
// per SKU and region whatever the channels; waiting is per channel in the
// finest rows and distinct people in the coarser ones; revenue adds up per
// currency; the rates need deliveries; a row that counts nothing is left
// out.
func TestRowsGroupings(t *testing.T) {
	cells := []cellSums{
		{sku: "a", region: "r1", channel: "email", waiting: 3,
			report:      map[string]int64{aggkeys.Notified: 4, aggkeys.Delivered: 4, aggkeys.UniqueClicks: 2, aggkeys.Clicks: 3},
			attribution: map[string]int64{aggkeys.DirectOrders: 1, aggkeys.DirectRevenue("EUR"): 1000}},
		{sku: "a", region: "r1", channel: "sms", waiting: 2,
			report:      map[string]int64{aggkeys.Notified: 2, aggkeys.Failed: 2},
			attribution: map[string]int64{aggkeys.AssistedOrders: 1, aggkeys.AssistedRevenue("USD"): 500}},
		{sku: "a", region: "r2", channel: "email", waiting: 1,
			report: map[string]int64{aggkeys.Notified: 1, aggkeys.Delivered: 1, aggkeys.UniqueClicks: 1}, attribution: map[string]int64{}},
		{sku: "b", region: "r1", channel: "email", report: map[string]int64{}, attribution: map[string]int64{}}, // nothing at all
	}
	restocks := map[string]int64{"a|r1": 2, "a|r2": 1}
	users := map[string]int64{"a|r1": 4, "a|r2": 1}
	none := map[string]int64{}
	tests := []struct {
		g    Grouping
		want []Row
	}{
		{BySKURegionChannel, []Row{
			{SKU: "a", Region: "r1", Channel: "email", Waiting: 3, Restocks: 2, Notified: 4, Delivered: 4, Clicks: 3, UniqueClicks: 2, DirectOrders: 1,
				DirectRevenue: map[string]int64{"EUR": 1000}, AssistedRevenue: none, ClickThroughRate: f(0.5), ConversionRate: f(0.25)},
			{SKU: "a", Region: "r1", Channel: "sms", Waiting: 2, Restocks: 2, Notified: 2, Failed: 2, AssistedOrders: 1,
				DirectRevenue: none, AssistedRevenue: map[string]int64{"USD": 500}},
			{SKU: "a", Region: "r2", Channel: "email", Waiting: 1, Restocks: 1, Notified: 1, Delivered: 1, UniqueClicks: 1,
				DirectRevenue: none, AssistedRevenue: none, ClickThroughRate: f(1), ConversionRate: f(0)},
		}},
		{BySKURegion, []Row{
			{SKU: "a", Region: "r1", Waiting: 4, Restocks: 2, Notified: 6, Delivered: 4, Failed: 2, Clicks: 3, UniqueClicks: 2, DirectOrders: 1, AssistedOrders: 1,
				DirectRevenue: map[string]int64{"EUR": 1000}, AssistedRevenue: map[string]int64{"USD": 500}, ClickThroughRate: f(0.5), ConversionRate: f(0.5)},
			{SKU: "a", Region: "r2", Waiting: 1, Restocks: 1, Notified: 1, Delivered: 1, UniqueClicks: 1,
				DirectRevenue: none, AssistedRevenue: none, ClickThroughRate: f(1), ConversionRate: f(0)},
		}},
		{BySKU, []Row{
			{SKU: "a", Waiting: 5, Restocks: 3, Notified: 7, Delivered: 5, Failed: 2, Clicks: 3, UniqueClicks: 3, DirectOrders: 1, AssistedOrders: 1,
				DirectRevenue: map[string]int64{"EUR": 1000}, AssistedRevenue: map[string]int64{"USD": 500}, ClickThroughRate: f(0.6), ConversionRate: f(0.4)},
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.g), func(t *testing.T) {
			if got := rows(cells, restocks, users, tt.g); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("rows:\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestRankDemand(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	in := []Demand{
		{SKU: "c", Region: "r1", Waiting: 1, SoldOutSince: t0.Add(time.Hour)},
		{SKU: "a", Region: "r1", Waiting: 5, SoldOutSince: t0.Add(2 * time.Hour)},
		{SKU: "b", Region: "r2", Waiting: 1, SoldOutSince: t0},
		{SKU: "b", Region: "r1", Waiting: 1, SoldOutSince: t0},
		{SKU: "d", Region: "r1", Waiting: 0, SoldOutSince: t0},
	}
	var got []string
	for _, d := range rankDemand(in, 4) {
		got = append(got, d.SKU+"|"+d.Region)
	}
	if want := []string{"a|r1", "b|r1", "b|r2", "c|r1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("ranked %v, want %v (most waiting, then longest sold out, then sku and region; cut at the limit)", got, want)
	}
}

func TestLagSeriesLeavesOutEmptyHours(t *testing.T) {
	days := []string{"20261130", "20261201"}
	sums := []map[string]int64{
		{aggkeys.LagCount("23"): 2, aggkeys.LagSumMS("23"): 3000},
		{aggkeys.LagCount("00"): 1, aggkeys.LagSumMS("00"): 500, aggkeys.LagUnmatched: 4},
	}
	maxes := []map[string]int64{{aggkeys.LagMaxMS("23"): 2000}, {aggkeys.LagMaxMS("00"): 500}}
	want := []LagPoint{
		{Hour: time.Date(2026, 11, 30, 23, 0, 0, 0, time.UTC), Count: 2, AvgMS: 1500, MaxMS: 2000},
		{Hour: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Count: 1, AvgMS: 500, MaxMS: 500},
	}
	if got := lagSeries(days, sums, maxes); !reflect.DeepEqual(got, want) {
		t.Errorf("series %+v, want %+v", got, want)
	}
}

func TestParseStock(t *testing.T) {
	for _, tt := range []struct {
		v           string
		soldOut, ok bool
		since       time.Time
	}{
		{"0|1764547200000", true, true, time.UnixMilli(1764547200000).UTC()},
		{"5|", false, true, time.Time{}},
		{"0|", false, false, time.Time{}},
		{"", false, false, time.Time{}},
	} {
		soldOut, since, ok := parseStock(tt.v)
		if soldOut != tt.soldOut || ok != tt.ok || !since.Equal(tt.since) {
			t.Errorf("parseStock(%q) = %v %v %v", tt.v, soldOut, since, ok)
		}
	}
}
