package reports

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"backinstock/services/engagement/internal/aggkeys"
)

// Grouping is how the performance rows are keyed.
type Grouping string

// The groupings: the finest (the default) and two coarser ones.
const (
	BySKURegionChannel Grouping = "sku,region,channel"
	BySKURegion        Grouping = "sku,region"
	BySKU              Grouping = "sku"
)

// Groupings are the values of the group_by parameter.
var Groupings = []Grouping{BySKURegionChannel, BySKURegion, BySKU}

// Query selects the performance rows and the lag series: the UTC days
// From to To (both included), optionally one SKU, region or channel.
type Query struct {
	From, To             time.Time
	SKU, Region, Channel string
	GroupBy              Grouping
}

// MaxDays bounds a query's range: each day of each row is a Redis read.
const MaxDays = 366

// Days are the day buckets (aggkeys.Day) of the query's range.
func (q Query) Days() []string {
	var out []string
	for d := q.From.UTC(); !d.After(q.To); d = d.AddDate(0, 0, 1) {
		out = append(out, aggkeys.Day(d))
	}
	return out
}

// matches tells whether the index member's SKU, region and channel pass
// the query's filters.
func (q Query) matches(sku, region, channel string) bool {
	return (q.SKU == "" || q.SKU == sku) && (q.Region == "" || q.Region == region) && (q.Channel == "" || q.Channel == channel)
}

// Row is one line of the performance report. Region and Channel are empty
// in a coarser grouping. Revenue is in minor units per currency (ISO 4217).
type Row struct {
	SKU     string `json:"sku"`
	Region  string `json:"region,omitempty"`
	Channel string `json:"channel,omitempty"`
	// Waiting is the wishlisters waiting now (not bound to the range): per
	// channel, those who chose it; in a coarser grouping, distinct people.
	Waiting         int64            `json:"waiting"`
	Restocks        int64            `json:"restocks"`
	Notified        int64            `json:"notified"`
	Delivered       int64            `json:"delivered"`
	Failed          int64            `json:"failed"`
	Unsubscribed    int64            `json:"unsubscribed"`
	Clicks          int64            `json:"clicks"`
	UniqueClicks    int64            `json:"unique_clicks"`
	DirectOrders    int64            `json:"direct_orders"`
	DirectUnits     int64            `json:"direct_units"`
	AssistedOrders  int64            `json:"assisted_orders"`
	AssistedUnits   int64            `json:"assisted_units"`
	DirectRevenue   map[string]int64 `json:"direct_revenue"`
	AssistedRevenue map[string]int64 `json:"assisted_revenue"`
	// ClickThroughRate is UniqueClicks / Delivered, ConversionRate
	// (DirectOrders + AssistedOrders) / Delivered; null without deliveries.
	ClickThroughRate *float64 `json:"click_through_rate"`
	ConversionRate   *float64 `json:"conversion_rate"`
}

// sumHash adds the integer fields of h into into.
func sumHash(into map[string]int64, h map[string]string) error {
	for f, v := range h {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("field %s = %q: %w", f, v, err)
		}
		into[f] += n
	}
	return nil
}

// rows assembles the report from the cells, the restocks per "sku|region"
// and the distinct waiting users per "sku|region": the rule part of the
// report, no I/O. Rows that count nothing at all are left out.
func rows(cells []cellSums, restocks, waitingUsers map[string]int64, g Grouping) []Row {
	type acc struct {
		row     Row
		regions map[string]bool // the (sku|region) pairs in the row: restocks and distinct waiting users count once each
	}
	byKey := map[string]*acc{}
	for _, c := range cells {
		key, region, channel := c.sku, "", ""
		switch g {
		case BySKURegion:
			key, region = c.sku+"|"+c.region, c.region
		case BySKU:
		default:
			key, region, channel = c.sku+"|"+c.region+"|"+c.channel, c.region, c.channel
		}
		a := byKey[key]
		if a == nil {
			a = &acc{row: Row{SKU: c.sku, Region: region, Channel: channel, DirectRevenue: map[string]int64{}, AssistedRevenue: map[string]int64{}}, regions: map[string]bool{}}
			byKey[key] = a
		}
		r := &a.row
		pair := c.sku + "|" + c.region
		if !a.regions[pair] {
			a.regions[pair] = true
			r.Restocks += restocks[pair]
			if g != BySKURegionChannel {
				r.Waiting += waitingUsers[pair]
			}
		}
		if g == BySKURegionChannel {
			r.Waiting += c.waiting
		}
		r.Notified += c.report[aggkeys.Notified]
		r.Delivered += c.report[aggkeys.Delivered]
		r.Failed += c.report[aggkeys.Failed]
		r.Unsubscribed += c.report[aggkeys.Suppressed]
		r.Clicks += c.report[aggkeys.Clicks]
		r.UniqueClicks += c.report[aggkeys.UniqueClicks]
		r.DirectOrders += c.attribution[aggkeys.DirectOrders]
		r.DirectUnits += c.attribution[aggkeys.DirectUnits]
		r.AssistedOrders += c.attribution[aggkeys.AssistedOrders]
		r.AssistedUnits += c.attribution[aggkeys.AssistedUnits]
		for f, v := range c.attribution {
			if kind, cur, ok := aggkeys.RevenueCurrency(f); ok {
				if kind == "direct" {
					r.DirectRevenue[cur] += v
				} else {
					r.AssistedRevenue[cur] += v
				}
			}
		}
	}
	out := make([]Row, 0, len(byKey))
	for _, a := range byKey {
		r := a.row
		if r.empty() {
			continue
		}
		if r.Delivered > 0 {
			ctr := float64(r.UniqueClicks) / float64(r.Delivered)
			conv := float64(r.DirectOrders+r.AssistedOrders) / float64(r.Delivered)
			r.ClickThroughRate, r.ConversionRate = &ctr, &conv
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Row) int {
		return cmp.Or(cmp.Compare(a.SKU, b.SKU), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Channel, b.Channel))
	})
	return out
}

func (r Row) empty() bool {
	return r.Waiting == 0 && r.Restocks == 0 && r.Notified == 0 && r.Delivered == 0 && r.Failed == 0 && r.Unsubscribed == 0 &&
		r.Clicks == 0 && r.UniqueClicks == 0 && r.DirectOrders == 0 && r.AssistedOrders == 0 && r.DirectUnits == 0 && r.AssistedUnits == 0 &&
		len(r.DirectRevenue) == 0 && len(r.AssistedRevenue) == 0
}

// cellSums is what the store read for one index member over the range,
// its hashes summed over the days.
type cellSums struct {
	sku, region, channel string
	report, attribution  map[string]int64
	waiting              int64
}

// LagPoint is one hour of the restock → delivery lag series: the
// deliveries of that UTC hour whose restock was known, their mean and
// longest lag.
type LagPoint struct {
	Hour  time.Time `json:"hour"`
	Count int64     `json:"count"`
	AvgMS int64     `json:"avg_ms"`
	MaxMS int64     `json:"max_ms"`
}

// lagSeries turns the report hashes of each day (summed over the rows
// matched, maxima kept) into points, the empty hours left out.
func lagSeries(days []string, perDay []map[string]int64, maxPerDay []map[string]int64) []LagPoint {
	var out []LagPoint
	for i, day := range days {
		d, err := time.Parse(aggkeys.DayLayout, day)
		if err != nil {
			continue
		}
		for h := 0; h < 24; h++ {
			hh := fmt.Sprintf("%02d", h)
			n := perDay[i][aggkeys.LagCount(hh)]
			if n == 0 {
				continue
			}
			out = append(out, LagPoint{Hour: d.Add(time.Duration(h) * time.Hour), Count: n,
				AvgMS: perDay[i][aggkeys.LagSumMS(hh)] / n, MaxMS: maxPerDay[i][aggkeys.LagMaxMS(hh)]})
		}
	}
	return out
}

// Demand is one sold-out SKU in a region.
type Demand struct {
	SKU          string    `json:"sku"`
	Region       string    `json:"region"`
	Waiting      int64     `json:"waiting"`
	SoldOutSince time.Time `json:"sold_out_since"`
	// SoldOutSeconds is how long it has been sold out at the report's time.
	SoldOutSeconds int64 `json:"sold_out_seconds"`
}

// rankDemand orders the sold-out SKUs: most wishlisters first, then the
// longest sold out, then by SKU and region, and keeps the first limit.
func rankDemand(ds []Demand, limit int) []Demand {
	slices.SortFunc(ds, func(a, b Demand) int {
		return cmp.Or(cmp.Compare(b.Waiting, a.Waiting), a.SoldOutSince.Compare(b.SoldOutSince), cmp.Compare(a.SKU, b.SKU), cmp.Compare(a.Region, b.Region))
	})
	if len(ds) > limit {
		ds = ds[:limit]
	}
	return ds
}

// parseStock splits a stock value "<quantity>|<since ms>"; soldOut when the
// quantity is 0.
func parseStock(v string) (soldOut bool, since time.Time, ok bool) {
	q, s, found := strings.Cut(v, "|")
	if !found {
		return false, time.Time{}, false
	}
	if q != "0" {
		return false, time.Time{}, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return false, time.Time{}, false
	}
	return true, time.UnixMilli(n).UTC(), true
}
