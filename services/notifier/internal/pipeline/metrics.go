package pipeline

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the notifier's own counters; the consumer-group runner adds
// lag, paused partitions, dead letters and retries (shared/kafka).
type Metrics struct {
	Consumed     *prometheus.CounterVec
	Deduped      *prometheus.CounterVec
	Sent         *prometheus.CounterVec
	Held         *prometheus.CounterVec
	Released     *prometheus.CounterVec
	DroppedStale *prometheus.CounterVec
	Suppressed   *prometheus.CounterVec
	Throttled    *prometheus.CounterVec
	ThrottleWait *prometheus.CounterVec
	PublishTime  *prometheus.HistogramVec
	HeldPending  prometheus.Gauge
	EdgeFailures *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer, region string) *Metrics {
	cl := prometheus.Labels{"region": region}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_notifier_" + name, Help: help, ConstLabels: cl}, labels)
	}
	m := &Metrics{
		Consumed:     counter("consumed_total", "Notification records read from Kafka.", "channel"),
		Deduped:      counter("deduped_total", "Notifications skipped as already sent: layer=redis (sent marker) or jetstream (Nats-Msg-Id duplicate).", "channel", "layer"),
		Sent:         counter("sent_total", "Notifications acknowledged by the edge stream for the first time.", "channel"),
		Held:         counter("held_total", "Notifications held for the recipient's quiet hours.", "channel"),
		Released:     counter("released_total", "Held notifications released after quiet hours.", "channel"),
		DroppedStale: counter("dropped_stale_total", "Notifications skipped because the sku sold out again.", "channel"),
		Suppressed:   counter("suppressed_total", "Notifications not published because the user unsubscribed (reason=unsubscribed) or opted out of the channel (opted_out) after the fan-out, or whose opt-out record is malformed (unreadable).", "channel", "reason"),
		Throttled:    counter("throttled_total", "Notifications that waited for the channel's rate limit.", "channel"),
		ThrottleWait: counter("throttle_wait_seconds_total", "Time partitions were paused for rate limits.", "channel"),
		EdgeFailures: counter("edge_failures_total", "Batches the edge did not acknowledge in time (retried).", "channel"),
		PublishTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backinstock_notifier_publish_seconds", Help: "Time from publishing a batch to the edge until its last PubAck.",
			ConstLabels: cl, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"channel"}),
		HeldPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "backinstock_notifier_held_pending", Help: "Notifications waiting for quiet hours to end.", ConstLabels: cl,
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Consumed, m.Deduped, m.Sent, m.Held, m.Released, m.DroppedStale, m.Suppressed, m.Throttled, m.ThrottleWait, m.EdgeFailures, m.PublishTime, m.HeldPending)
	}
	return m
}
