package kafka

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the consumer-group runner's Prometheus metrics.
type Metrics struct {
	Records       *prometheus.CounterVec
	DeadLetters   *prometheus.CounterVec
	Retries       *prometheus.CounterVec
	Paused        *prometheus.GaugeVec
	Lag           *prometheus.GaugeVec
	HandleSeconds *prometheus.HistogramVec
	// ReplayRecords counts what ReplayWindow read, by outcome: handled,
	// rejected (poison, not dead-lettered again), outside_window.
	ReplayRecords *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backinstock_consumer_records_committed_total", Help: "Records processed and marked for commit (committed promptly, at the latest when the partition is released).",
		}, []string{"group", "topic"}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backinstock_consumer_dead_letters_total", Help: "Records sent to the dead-letter topic.",
		}, []string{"group", "topic"}),
		Retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backinstock_consumer_batch_retries_total", Help: "Batches handed again after a failure.",
		}, []string{"group", "topic"}),
		Paused: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backinstock_consumer_paused_partitions", Help: "Partitions paused for backpressure or retry.",
		}, []string{"group", "topic"}),
		Lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "backinstock_consumer_lag_records", Help: "High-water mark minus the next offset to process, per claimed partition.",
		}, []string{"group", "topic", "partition"}),
		HandleSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backinstock_consumer_batch_seconds", Help: "Time the handler took per batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"group", "topic"}),
		ReplayRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "backinstock_consumer_replayed_records_total", Help: "Records a bounded replay (ReplayWindow) read, by outcome: handled, rejected, outside_window. group is the replay's name.",
		}, []string{"group", "topic", "outcome"}),
	}
	if reg != nil {
		reg.MustRegister(m.Records, m.DeadLetters, m.Retries, m.Paused, m.Lag, m.HandleSeconds, m.ReplayRecords)
	}
	return m
}
