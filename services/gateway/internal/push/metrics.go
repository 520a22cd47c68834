package push

import "github.com/prometheus/client_golang/prometheus"

// Metrics count what happened per device; the delivery protocol counts
// per notification.
type Metrics struct {
	// Devices: sent, gone, rejected, retried.
	Devices *prometheus.CounterVec
	// Removals: removed, kept, gone, error.
	Removals         *prometheus.CounterVec
	ProgressFailures *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg (nil:
// unregistered). One set serves both push channels.
func NewMetrics(reg prometheus.Registerer, region string) *Metrics {
	cl := prometheus.Labels{"region": region}
	counter := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_gateway_push_" + name, Help: help, ConstLabels: cl}, labels)
	}
	m := &Metrics{
		Devices:          counter("devices_total", "Push calls per device, by outcome: sent, gone (the push service no longer knows it), rejected (permanent), retried (transient).", "channel", "provider", "outcome"),
		Removals:         counter("device_removals_total", "Dead devices removed through the wishlist API, by result: removed (or was not there), kept (re-registered since), gone (404), error (tried again on its next push).", "channel", "result"),
		ProgressFailures: counter("progress_failures_total", "Device accepts that could not be recorded in Redis (a retry of that notification would send to the device again).", "channel"),
	}
	if reg != nil {
		reg.MustRegister(m.Devices, m.Removals, m.ProgressFailures)
	}
	return m
}
