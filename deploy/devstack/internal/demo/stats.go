package demo

import (
	"context"
	"net/http"
	"sync"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// stages maps each counter the page shows to the metric families summed for
// it, across every service scraped.
var stages = map[string][]string{
	"restocks": {"backinstock_inventory_restocks_total"},
	"produced": {"backinstock_wishlist_notifications_produced_total"},
	"deduped":  {"backinstock_notifier_deduped_total"},
	"sent":     {"backinstock_notifier_sent_total"},
	"held":     {"backinstock_notifier_held_total"},
	"lag":      {"backinstock_consumer_lag_records"},
}

// Scrape reads every URL's /metrics and sums the stage metrics.
func Scrape(ctx context.Context, client *http.Client, urls []string) map[string]float64 {
	var (
		mu  sync.Mutex
		out = map[string]float64{}
		wg  sync.WaitGroup
	)
	for _, u := range urls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fams := scrapeOne(ctx, client, u)
			mu.Lock()
			defer mu.Unlock()
			for stage, names := range stages {
				for _, n := range names {
					out[stage] += sum(fams[n])
				}
			}
		}()
	}
	wg.Wait()
	return out
}

func scrapeOne(ctx context.Context, client *http.Client, url string) map[string]*dto.MetricFamily {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	return fams
}

func sum(f *dto.MetricFamily) float64 {
	if f == nil {
		return 0
	}
	var s float64
	for _, m := range f.Metric {
		switch {
		case m.Counter != nil:
			s += m.Counter.GetValue()
		case m.Gauge != nil:
			s += m.Gauge.GetValue()
		case m.Untyped != nil:
			s += m.Untyped.GetValue()
		}
	}
	return s
}
