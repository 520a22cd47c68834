package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"backinstock/services/inventory/internal/store"
)

// Metrics are the API's Prometheus metrics.
type Metrics struct {
	Requests *prometheus.CounterVec
	Duration *prometheus.HistogramVec
	Updates  *prometheus.CounterVec
	Restocks prometheus.Counter
	Rejected prometheus.Counter
	Replays  prometheus.Counter
}

// NewMetrics registers the API metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_inventory_http_requests_total",
			Help: "HTTP requests by route and status code."}, []string{"route", "code"}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "backinstock_inventory_http_request_duration_seconds",
			Help: "HTTP request duration by route.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"route"}),
		Updates: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_inventory_stock_updates_total",
			Help: "Applied stock updates by outcome: restock, changed (other level change), unchanged."}, []string{"outcome"}),
		Restocks: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_inventory_restocks_total",
			Help: "Sold-out to available transitions detected (each is one restock event in the outbox)."}),
		Rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_inventory_rejected_updates_total",
			Help: "Updates rejected by validation (whole requests and bulk items)."}),
		Replays: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_inventory_idempotent_replays_total",
			Help: "Writes answered from a stored Idempotency-Key result."}),
	}
	if reg != nil {
		reg.MustRegister(m.Requests, m.Duration, m.Updates, m.Restocks, m.Rejected, m.Replays)
	}
	return m
}

func (m *Metrics) count(res []store.Result) {
	var restock, changed, unchanged int
	for _, r := range res {
		switch {
		case r.Restock:
			restock++
		case r.Previous != r.Quantity:
			changed++
		default:
			unchanged++
		}
	}
	m.Updates.WithLabelValues("restock").Add(float64(restock))
	m.Updates.WithLabelValues("changed").Add(float64(changed))
	m.Updates.WithLabelValues("unchanged").Add(float64(unchanged))
	m.Restocks.Add(float64(restock))
}
