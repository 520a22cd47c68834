package api

import (
	"context"
	_ "embed"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"backinstock/services/engagement/internal/reports"
	"backinstock/shared/httpapi"
	"backinstock/topics/events"
)

// Reports reads the report aggregates (internal/reports).
type Reports interface {
	Performance(ctx context.Context, q reports.Query) ([]reports.Row, error)
	Lag(ctx context.Context, q reports.Query) (reports.Lag, error)
	Demand(ctx context.Context, q reports.DemandQuery) ([]reports.Demand, error)
}

// Defaults of the report queries.
const (
	// defaultDays is the range when from is not given: the last week.
	defaultDays = 7
	// defaultDemandLimit and maxDemandLimit bound the demand ranking.
	defaultDemandLimit = 100
	maxDemandLimit     = 1000
)

const dateLayout = time.DateOnly

// reportPage is the merchant's page (GET /reports): plain HTML and
// script, the charts drawn as inline SVG, nothing from a CDN (the demo
// has no internet).
//
//go:embed reports.html
var reportPage []byte

func (a *API) page(w http.ResponseWriter, _ *http.Request) error {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// The page talks only to this service; the token it is given stays here.
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
	h.Set("Referrer-Policy", "no-referrer")
	_, err := w.Write(reportPage)
	return err
}

// params checks a report request's query: only the names allowed (and
// format, which every report takes), each at most once; it returns the
// values and whether the answer is CSV.
func params(r *http.Request, allowed ...string) (url.Values, bool, error) {
	allowed = append(allowed, "format")
	v := r.URL.Query()
	for name, vals := range v {
		if !slices.Contains(allowed, name) {
			return nil, false, httpapi.BadRequest("%s: unknown query parameter (allowed: %s)", name, strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return nil, false, httpapi.BadRequest("%s: given %d times, allowed once", name, len(vals))
		}
	}
	asCSV, err := wantCSV(r, v)
	return v, asCSV, err
}

// wantCSV tells the format: format=csv or json wins, else an Accept
// header that names text/csv.
func wantCSV(r *http.Request, v url.Values) (bool, error) {
	switch f := v.Get("format"); f {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
		return strings.Contains(r.Header.Get("Accept"), "text/csv"), nil
	default:
		return false, httpapi.BadRequest("format: must be json or csv, got %q", f)
	}
}

// query reads from, to, sku, region, channel and group_by.
func (a *API) query(v url.Values) (reports.Query, error) {
	var q reports.Query
	today := a.o.Now().UTC().Truncate(24 * time.Hour)
	day := func(name string, def time.Time) (time.Time, error) {
		s := v.Get(name)
		if s == "" {
			return def, nil
		}
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return time.Time{}, httpapi.BadRequest("%s: must be a UTC date YYYY-MM-DD, got %q", name, s)
		}
		return t, nil
	}
	var err error
	if q.To, err = day("to", today); err != nil {
		return q, err
	}
	if q.From, err = day("from", q.To.AddDate(0, 0, -(defaultDays-1))); err != nil {
		return q, err
	}
	if q.From.After(q.To) {
		return q, httpapi.BadRequest("from: %s is after to %s", q.From.Format(dateLayout), q.To.Format(dateLayout))
	}
	if n := int(q.To.Sub(q.From)/(24*time.Hour)) + 1; n > reports.MaxDays {
		return q, httpapi.BadRequest("from: the range is %d days, at most %d", n, reports.MaxDays)
	}
	if q.SKU = v.Get("sku"); q.SKU != "" {
		if err := events.CheckID("sku", q.SKU); err != nil {
			return q, httpapi.BadRequest("%v", err)
		}
	}
	if q.Region = v.Get("region"); q.Region != "" {
		if err := events.CheckRegion("region", q.Region); err != nil {
			return q, httpapi.BadRequest("%v", err)
		}
	}
	if q.Channel = v.Get("channel"); q.Channel != "" && !events.ValidChannel(q.Channel) {
		return q, httpapi.BadRequest("channel: must be one of %s, got %q", strings.Join(events.ChannelNames(), ", "), q.Channel)
	}
	q.GroupBy = reports.BySKURegionChannel
	if g := v.Get("group_by"); g != "" {
		q.GroupBy = reports.Grouping(g)
		if !slices.Contains(reports.Groupings, q.GroupBy) {
			return q, httpapi.BadRequest("group_by: must be one of %q, got %q", reports.Groupings, g)
		}
	}
	return q, nil
}

// PerformanceReport is the JSON answer of GET /v1/reports/performance.
type PerformanceReport struct {
	From    string        `json:"from"`
	To      string        `json:"to"`
	GroupBy string        `json:"group_by"`
	Rows    []reports.Row `json:"rows"`
}

func (a *API) performance(w http.ResponseWriter, r *http.Request) error {
	v, asCSV, err := params(r, "from", "to", "sku", "region", "channel", "group_by")
	if err != nil {
		return err
	}
	q, err := a.query(v)
	if err != nil {
		return err
	}
	rows, err := a.o.Reports.Performance(r.Context(), q)
	if err != nil {
		return err
	}
	if asCSV {
		return writeCSV(w, "performance", performanceCSV(rows))
	}
	httpapi.WriteJSON(w, http.StatusOK, PerformanceReport{From: q.From.Format(dateLayout), To: q.To.Format(dateLayout), GroupBy: string(q.GroupBy), Rows: rows})
	return nil
}

// performanceCSV is the table of the rows: a revenue column per kind and
// currency that any row has (minor units), the rates empty without
// deliveries.
func performanceCSV(rows []reports.Row) [][]string {
	var curs []string
	for _, r := range rows {
		for c := range r.DirectRevenue {
			curs = append(curs, c)
		}
		for c := range r.AssistedRevenue {
			curs = append(curs, c)
		}
	}
	slices.Sort(curs)
	curs = slices.Compact(curs)
	head := []string{"sku", "region", "channel", "waiting", "restocks", "notified", "delivered", "failed", "unsubscribed",
		"clicks", "unique_clicks", "direct_orders", "direct_units", "assisted_orders", "assisted_units"}
	for _, c := range curs {
		head = append(head, "direct_revenue_"+c)
	}
	for _, c := range curs {
		head = append(head, "assisted_revenue_"+c)
	}
	head = append(head, "click_through_rate", "conversion_rate")
	out := [][]string{head}
	for _, r := range rows {
		rec := []string{r.SKU, r.Region, r.Channel}
		for _, n := range []int64{r.Waiting, r.Restocks, r.Notified, r.Delivered, r.Failed, r.Unsubscribed, r.Clicks, r.UniqueClicks,
			r.DirectOrders, r.DirectUnits, r.AssistedOrders, r.AssistedUnits} {
			rec = append(rec, strconv.FormatInt(n, 10))
		}
		for _, c := range curs {
			rec = append(rec, strconv.FormatInt(r.DirectRevenue[c], 10))
		}
		for _, c := range curs {
			rec = append(rec, strconv.FormatInt(r.AssistedRevenue[c], 10))
		}
		rec = append(rec, rate(r.ClickThroughRate), rate(r.ConversionRate))
		out = append(out, rec)
	}
	return out
}

func rate(p *float64) string {
	if p == nil {
		return ""
	}
	return strconv.FormatFloat(*p, 'f', -1, 64)
}

// LagReport is the JSON answer of GET /v1/reports/lag.
type LagReport struct {
	From   string             `json:"from"`
	To     string             `json:"to"`
	Points []reports.LagPoint `json:"points"`
	// Unmatched counts the deliveries in the range whose restock the
	// reports had not seen (not in the points).
	Unmatched int64 `json:"unmatched"`
}

func (a *API) lag(w http.ResponseWriter, r *http.Request) error {
	v, asCSV, err := params(r, "from", "to", "sku", "region", "channel")
	if err != nil {
		return err
	}
	q, err := a.query(v)
	if err != nil {
		return err
	}
	lag, err := a.o.Reports.Lag(r.Context(), q)
	if err != nil {
		return err
	}
	if asCSV {
		out := [][]string{{"hour", "count", "avg_ms", "max_ms"}}
		for _, p := range lag.Points {
			out = append(out, []string{p.Hour.Format(time.RFC3339), strconv.FormatInt(p.Count, 10), strconv.FormatInt(p.AvgMS, 10), strconv.FormatInt(p.MaxMS, 10)})
		}
		return writeCSV(w, "lag", out)
	}
	httpapi.WriteJSON(w, http.StatusOK, LagReport{From: q.From.Format(dateLayout), To: q.To.Format(dateLayout), Points: lag.Points, Unmatched: lag.Unmatched})
	return nil
}

// DemandReport is the JSON answer of GET /v1/reports/demand.
type DemandReport struct {
	AsOf time.Time        `json:"as_of"`
	SKUs []reports.Demand `json:"skus"`
}

func (a *API) demand(w http.ResponseWriter, r *http.Request) error {
	v, asCSV, err := params(r, "region", "limit")
	if err != nil {
		return err
	}
	q := reports.DemandQuery{Region: v.Get("region"), Limit: defaultDemandLimit, Now: a.o.Now().UTC()}
	if q.Region != "" {
		if err := events.CheckRegion("region", q.Region); err != nil {
			return httpapi.BadRequest("%v", err)
		}
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxDemandLimit {
			return httpapi.BadRequest("limit: must be an integer from 1 to %d, got %q", maxDemandLimit, s)
		}
		q.Limit = n
	}
	ds, err := a.o.Reports.Demand(r.Context(), q)
	if err != nil {
		return err
	}
	if asCSV {
		out := [][]string{{"rank", "sku", "region", "waiting", "sold_out_since", "sold_out_seconds"}}
		for i, d := range ds {
			out = append(out, []string{strconv.Itoa(i + 1), d.SKU, d.Region, strconv.FormatInt(d.Waiting, 10), d.SoldOutSince.Format(time.RFC3339Nano), strconv.FormatInt(d.SoldOutSeconds, 10)})
		}
		return writeCSV(w, "demand", out)
	}
	httpapi.WriteJSON(w, http.StatusOK, DemandReport{AsOf: q.Now, SKUs: ds})
	return nil
}

// writeCSV writes the table as RFC 4180 CSV, offered as a download.
func writeCSV(w http.ResponseWriter, name string, table [][]string) error {
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".csv"))
	w.WriteHeader(http.StatusOK)
	cw := csv.NewWriter(w)
	if err := cw.WriteAll(table); err != nil {
		return fmt.Errorf("write %s csv: %w", name, err)
	}
	return nil
}
