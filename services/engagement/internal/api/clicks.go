package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/shared/httpapi"
	"backinstock/topics/clicklink"
	"backinstock/topics/events"
)

// Metrics count the clicks and the orders taken.
type Metrics struct {
	clicks, unique *prometheus.CounterVec
	rejected       *prometheus.CounterVec
	failures       *prometheus.CounterVec
	orders         prometheus.Counter
}

// Rejection reasons (the label of click_rejections_total).
const (
	RejectMalformed    = "malformed"
	RejectUnknownKey   = "unknown_key"
	RejectBadSignature = "bad_signature"
	RejectExpired      = "expired"
)

// NewMetrics registers the click and order metrics on reg (nil:
// unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		clicks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_engagement_clicks_total",
			Help: "Tracked-link clicks redirected, every follow counted, by the notification's region and channel."}, []string{"region", "channel"}),
		unique: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_engagement_unique_clicks_total",
			Help: "Notifications whose tracked link was followed for the first time, by region and channel."}, []string{"region", "channel"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_engagement_click_rejections_total",
			Help: "Tracked-link requests answered 404: the token was malformed, signed with an unknown key, forged or expired."}, []string{"reason"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_engagement_click_record_failures_total",
			Help: "Clicks redirected although a record of them failed: the Redis counters or the Kafka event."}, []string{"store"}),
		orders: prometheus.NewCounter(prometheus.CounterOpts{Name: "backinstock_engagement_orders_received_total",
			Help: "Orders POSTed to /v1/orders and written to orders.v1 for the first time (repeats of an accepted order not counted)."}),
	}
	for _, r := range []string{RejectMalformed, RejectUnknownKey, RejectBadSignature, RejectExpired} {
		m.rejected.WithLabelValues(r)
	}
	for _, s := range []string{"redis", "kafka"} {
		m.failures.WithLabelValues(s)
	}
	if reg != nil {
		reg.MustRegister(m.clicks, m.unique, m.rejected, m.failures, m.orders)
	}
	return m
}

// click is GET /c/{token}: a genuine, unexpired token is counted (Redis),
// written as a click event (Kafka) and redirected (302) to the product URL
// it carries; anything else is the plain 404 page and no redirect, so the
// route is no open redirect. A failed record does not keep the person from
// the product: the redirect happens regardless, the failure is logged and
// counted. HEAD is redirected without counting: link checkers and mail
// scanners probe with it, people do not.
func (a *API) click(w http.ResponseWriter, r *http.Request) error {
	now := a.o.Now()
	c, err := a.o.Keys.Verify(r.PathValue("token"), now)
	if err != nil {
		a.o.Metrics.rejected.WithLabelValues(rejection(err)).Inc()
		a.o.Log.Debug("click token refused", zap.Error(err))
		notFound(w)
		return nil
	}
	if r.Method == http.MethodGet {
		a.record(r.Context(), c, now)
	}
	h := w.Header()
	// Every follow must reach us to be counted, and the token (a user id
	// among it) stays out of the product page's Referer.
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Location", c.URL)
	w.WriteHeader(http.StatusFound)
	return nil
}

// record counts the click and writes its event, each under its own
// deadline.
func (a *API) record(ctx context.Context, c clicklink.Claim, now time.Time) {
	nid := c.NotificationID()
	log := a.o.Log.With(zap.String("notification_id", nid))
	rctx, cancel := context.WithTimeout(ctx, a.o.RequestTimeout)
	counts, err := a.o.Counters.Click(rctx, nid, now, c.Expires)
	cancel()
	if err != nil {
		a.o.Metrics.failures.WithLabelValues("redis").Inc()
		log.Warn("click redirected without counting it", zap.Error(err))
	}
	a.o.Metrics.clicks.WithLabelValues(c.Region, c.Channel).Inc()
	if counts.First {
		a.o.Metrics.unique.WithLabelValues(c.Region, c.Channel).Inc()
	}
	ev := events.ClickEvent{
		EventID: events.NewClickEventID(), Type: events.ClickTypeClicked, NotificationID: nid,
		UserID: c.UserID, SKU: c.SKU, Region: c.Region, Channel: c.Channel, Episode: c.Episode, URL: c.URL, At: now.UTC(),
	}
	kctx, cancel := context.WithTimeout(ctx, a.o.RequestTimeout)
	err = a.o.ClickLog.Write(kctx, ev)
	cancel()
	if err != nil {
		a.o.Metrics.failures.WithLabelValues("kafka").Inc()
		log.Warn("click redirected without its event", zap.Error(err))
	}
}

func rejection(err error) string {
	switch {
	case errors.Is(err, clicklink.ErrExpired):
		return RejectExpired
	case errors.Is(err, clicklink.ErrBadSignature):
		return RejectBadSignature
	case errors.Is(err, clicklink.ErrUnknownKey):
		return RejectUnknownKey
	}
	return RejectMalformed
}

// notFoundPage is what every link that does not work shows: the same page
// whatever failed, so a prober learns nothing from it.
const notFoundPage = `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Link not found</title></head>
<body style="font-family: sans-serif; line-height: 1.5; max-width: 36em; margin: 2em auto;">
<h1 style="font-size: 1.3em;">This link does not work</h1>
<p>It may have expired or been copied incompletely. The product is still in the shop.</p>
</body>
</html>
`

func notFound(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(notFoundPage))
}

// ClickCounts is the answer of GET /v1/notifications/{id}/clicks.
type ClickCounts struct {
	NotificationID string     `json:"notification_id"`
	Total          int64      `json:"total"`
	Unique         int64      `json:"unique"`
	FirstAt        *time.Time `json:"first_at,omitempty"`
}

func (a *API) notificationClicks(w http.ResponseWriter, r *http.Request) error {
	nid := r.PathValue("notification_id")
	if err := events.CheckID("notification_id", nid); err != nil {
		return httpapi.BadRequest("%v", err)
	}
	c, err := a.o.Counters.Get(r.Context(), nid)
	if err != nil {
		return err
	}
	out := ClickCounts{NotificationID: nid, Total: c.Total, Unique: c.Unique()}
	if !c.FirstAt.IsZero() {
		out.FirstAt = &c.FirstAt
	}
	httpapi.WriteJSON(w, http.StatusOK, out)
	return nil
}
