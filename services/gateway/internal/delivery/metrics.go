package delivery

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the protocol's counters; the edge consumer adds the
// consumer's backlog and acks (package edge).
type Metrics struct {
	Sent              *prometheus.CounterVec
	Failed            *prometheus.CounterVec
	Retries           *prometheus.CounterVec
	Suppressed        *prometheus.CounterVec
	Duplicates        *prometheus.CounterVec
	Busy              *prometheus.CounterVec
	Poison            *prometheus.CounterVec
	Receipts          *prometheus.CounterVec
	DependencyRetries *prometheus.CounterVec
	SendTime          *prometheus.HistogramVec
}

// NewMetrics creates the metrics and registers them with reg (nil:
// unregistered).
func NewMetrics(reg prometheus.Registerer, region string) *Metrics {
	cl := prometheus.Labels{"region": region}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_gateway_" + name, Help: help, ConstLabels: cl}, labels)
	}
	m := &Metrics{
		Sent:       counter("sent_total", "Notifications the provider accepted (once each: a redelivery after the marker is a duplicate).", "channel", "provider"),
		Failed:     counter("failed_total", "Notifications failed for good, by reason (smtp_550, no_contact, template, invalid, gave_up, ...).", "channel", "provider", "reason"),
		Retries:    counter("retries_total", "Transient send failures handed back to JetStream for a later attempt, by reason (smtp_451, connect, ...).", "channel", "provider", "reason"),
		Suppressed: counter("suppressed_total", "Notifications not sent because the user unsubscribed (reason=unsubscribed) or opted out of the channel (opted_out) after the fan-out, or whose opt-out record is malformed (unreadable): a suppressed receipt, acked.", "channel", "reason"),
		Duplicates: counter("duplicates_total", "Deliveries of a notification already marked delivered: nothing sent, the receipt written again.", "channel"),
		Busy:       counter("busy_total", "Deliveries of a notification another sender held the claim on: retried later.", "channel"),
		Poison:     counter("poison_total", "Edge messages that are not a notification at all: dropped (term), no receipt possible.", "channel"),
		Receipts:   counter("receipts_total", "Delivery receipts written to delivery.status.v1, by status.", "channel", "status"),
		DependencyRetries: counter("dependency_retries_total",
			"In-place retries of a step that reaches Redis or Kafka (the message is kept, no attempt is spent).", "dependency"),
		SendTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "backinstock_gateway_send_seconds", Help: "Time of one provider call (render and send), successful or not.",
			ConstLabels: cl, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"channel", "provider"}),
	}
	if reg != nil {
		reg.MustRegister(m.Sent, m.Failed, m.Retries, m.Suppressed, m.Duplicates, m.Busy, m.Poison, m.Receipts, m.DependencyRetries, m.SendTime)
	}
	return m
}
