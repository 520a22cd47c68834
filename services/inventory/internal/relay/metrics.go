package relay

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the relay's Prometheus metrics.
type Metrics struct {
	Backlog   prometheus.Gauge
	OldestAge prometheus.Gauge
	Published *prometheus.CounterVec
	Latency   *prometheus.HistogramVec
	Errors    prometheus.Counter
	Skipped   prometheus.Counter
}

// NewMetrics registers the relay metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Backlog: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backinstock_inventory_outbox_backlog",
			Help: "Outbox entries not yet published to Kafka (all shards)."}),
		OldestAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "backinstock_inventory_outbox_oldest_age_seconds",
			Help: "Age of the oldest unpublished outbox entry (0 when empty)."}),
		Published: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_inventory_published_records_total",
			Help: "Records acknowledged by Kafka, by topic."}, []string{"topic"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "backinstock_inventory_publish_latency_seconds",
			Help:    "Time from the outbox append to the Kafka acknowledgement, by topic.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"topic"}),
		Errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_inventory_relay_errors_total",
			Help: "Failed relay steps (Kafka produce, Redis read or trim); each is retried."}),
		Skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_inventory_outbox_skipped_total",
			Help: "Outbox entries that could not be decoded and were skipped."}),
	}
	if reg != nil {
		reg.MustRegister(m.Backlog, m.OldestAge, m.Published, m.Latency, m.Errors, m.Skipped)
	}
	return m
}

func (m *Metrics) observe(topic string, d time.Duration) {
	m.Published.WithLabelValues(topic).Inc()
	m.Latency.WithLabelValues(topic).Observe(d.Seconds())
}
