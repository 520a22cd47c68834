package edge

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the edge consumer's numbers, per channel.
type Metrics struct {
	Pending     *prometheus.GaugeVec
	AckPending  *prometheus.GaugeVec
	Redelivered *prometheus.GaugeVec
	InFlight    *prometheus.GaugeVec
	InProgress  *prometheus.CounterVec
	Acks        *prometheus.CounterVec
	AckFailures *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil:
// unregistered).
func NewMetrics(reg prometheus.Registerer, region string) *Metrics {
	cl := prometheus.Labels{"region": region}
	gauge := func(name, help string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "backinstock_gateway_" + name, Help: help, ConstLabels: cl}, []string{"channel"})
	}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_gateway_" + name, Help: help, ConstLabels: cl}, labels)
	}
	m := &Metrics{
		Pending:     gauge("consumer_pending", "Edge messages the channel's consumer has not delivered yet (the backlog in the stream)."),
		AckPending:  gauge("consumer_ack_pending", "Edge messages delivered and not yet acknowledged, over all replicas (bounded by GATEWAY_MAX_ACK_PENDING)."),
		Redelivered: gauge("consumer_redelivered", "Edge messages delivered more than once and not yet acknowledged."),
		InFlight:    gauge("in_flight", "Edge messages this replica is handling now."),
		InProgress:  counter("in_progress_acks_total", "In-progress acks sent for slow sends.", "channel"),
		Acks:        counter("acks_total", "Edge messages answered: action=ack, nak (retry later), term (dropped) or none (abandoned: a test's crash hook).", "channel", "action"),
		AckFailures: counter("ack_failures_total", "Acks the server did not confirm (the message comes back; the marker answers it).", "channel"),
	}
	if reg != nil {
		reg.MustRegister(m.Pending, m.AckPending, m.Redelivered, m.InFlight, m.InProgress, m.Acks, m.AckFailures)
	}
	return m
}
