package attribution

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/shared/kafka"
	"backinstock/topics/events"
)

// Topics are the topics the consumer reads.
type Topics struct {
	Clicks, Status, Orders string
}

// List is the topics in the group's order.
func (t Topics) List() []string { return []string{t.Clicks, t.Status, t.Orders} }

// Metrics count what the attribution decided.
type Metrics struct {
	lines   prometheus.Counter
	orders  *prometheus.CounterVec
	revenue *prometheus.CounterVec
}

// NewMetrics registers the attribution metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		lines: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_engagement_order_lines_total",
			Help: "Order lines the attribution counted for the first time (a replayed or redelivered order is not counted again)."}),
		orders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_engagement_attributed_orders_total",
			Help: "Order lines attributed to a notification, by the region and channel of the click (direct) or delivery (assisted) that earned them; a line a late click moves from assisted to direct counts under both."},
			[]string{"region", "channel", "kind"}),
		revenue: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_engagement_attributed_revenue_total",
			Help: "Revenue of the attributed order lines in the currency's major units (quantity × unit price), by region, channel, kind and currency."},
			[]string{"region", "channel", "kind", "currency"}),
	}
	if reg != nil {
		reg.MustRegister(m.lines, m.orders, m.revenue)
	}
	return m
}

func (m *Metrics) observe(outs []Outcome) {
	for _, o := range outs {
		if o.NewLine {
			m.lines.Inc()
		}
		for _, c := range o.Changes {
			m.orders.WithLabelValues(c.Region, c.Channel, c.Kind).Inc()
			m.revenue.WithLabelValues(c.Region, c.Channel, c.Kind, c.Currency).Add(majorUnits(c.Revenue, c.Currency))
		}
	}
}

// majorUnits converts minor units for a float metric (the aggregates
// keep the exact integers).
func majorUnits(minor int64, currency string) float64 {
	v := float64(minor)
	for range events.CurrencyExponent(currency) {
		v /= 10
	}
	return v
}

// Handler is the attribution group's kafka.Handler: clicks and deliveries
// are touches, orders are lines; each batch is one pipeline of scripts.
// Undecodable or invalid records are dead-lettered.
type Handler struct {
	st      *Store
	topics  Topics
	metrics *Metrics
	log     *zap.Logger
}

// NewHandler decides with st the records of topics.
func NewHandler(st *Store, topics Topics, m *Metrics, log *zap.Logger) *Handler {
	if m == nil {
		m = NewMetrics(nil)
	}
	return &Handler{st: st, topics: topics, metrics: m, log: log}
}

// Handle queues one script call per touch or order line of the batch and
// runs them; it returns nil once every effect is in Redis.
func (h *Handler) Handle(ctx context.Context, b *kafka.Batch) error {
	var calls Batch
	for _, rec := range b.Records {
		switch b.Topic {
		case h.topics.Clicks:
			c, err := events.DecodeClickEvent(rec.Value)
			if err != nil {
				b.Reject(rec, err)
				continue
			}
			h.st.AddTouch(&calls, "click", Touch{UserID: c.UserID, SKU: c.SKU, Region: c.Region, Channel: c.Channel, EventID: c.EventID, At: c.At})
		case h.topics.Status:
			d, err := events.DecodeDeliveryStatus(rec.Value)
			if err != nil {
				b.Reject(rec, err)
				continue
			}
			if d.Status != events.StatusDelivered {
				continue
			}
			h.st.AddTouch(&calls, "delivered", Touch{UserID: d.UserID, SKU: d.SKU, Region: d.Region, Channel: d.Channel, EventID: d.EventID, At: d.At})
		case h.topics.Orders:
			o, err := events.DecodeOrder(rec.Value)
			if err != nil {
				b.Reject(rec, err)
				continue
			}
			for i, l := range o.Lines {
				rev, _ := l.MinorUnits(o.Currency) // Validate checked it
				h.st.AddLine(&calls, Line{OrderID: o.OrderID, Index: i, UserID: o.UserID, SKU: l.SKU, OrderedAt: o.OrderedAt,
					Quantity: l.Quantity, Revenue: rev, Currency: o.Currency})
			}
		}
	}
	outs, err := h.st.Run(ctx, &calls)
	if err != nil {
		return err
	}
	h.metrics.observe(outs)
	return nil
}
