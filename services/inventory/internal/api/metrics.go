package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"backinstock/services/inventory/internal/store"
	"backinstock/shared/httpapi"
)

// Metrics are the API's Prometheus metrics.
type Metrics struct {
	// HTTP counts and times the routes (backinstock_inventory_http_*).
	HTTP     *httpapi.RouteMetrics
	Updates  *prometheus.CounterVec
	Restocks prometheus.Counter
	Rejected prometheus.Counter
	Replays  prometheus.Counter
}

// NewMetrics registers the API metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTP: httpapi.NewRouteMetrics(reg, "inventory"),
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
		reg.MustRegister(m.Updates, m.Restocks, m.Rejected, m.Replays)
	}
	return m
}

func (m *Metrics) count(res []store.Result) {
	var restock, changed, unchanged int
	for _, r := range res {
		switch {
		case r.Replayed: // applied and counted by an earlier attempt
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
