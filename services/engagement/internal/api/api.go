// Package api is the engagement service's HTTP side: the public tracked
// link route (/c/<token>) and the authenticated API under /v1 (a
// notification's click counters, the shop's orders, the reports and their
// page; each family of routes in a file of its own).
package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"go.uber.org/zap"

	"backinstock/services/engagement/internal/store"
	"backinstock/shared/httpapi"
	"backinstock/topics/clicklink"
	"backinstock/topics/events"
)

// Counters are the click counters (internal/store).
type Counters interface {
	Click(ctx context.Context, notificationID string, at, expires time.Time) (store.Clicks, error)
	Get(ctx context.Context, notificationID string) (store.Clicks, error)
}

// ClickLog writes click events (internal/eventlog).
type ClickLog interface {
	Write(ctx context.Context, c events.ClickEvent) error
}

// Options configure the API.
type Options struct {
	// Token is the bearer token of the /v1 routes.
	Token string
	// Keys verify the tracked links' tokens.
	Keys     clicklink.Keys
	Counters Counters
	ClickLog ClickLog
	// Reports reads the report aggregates.
	Reports Reports
	// OrderMarks and OrderLog take the shop's orders (POST /v1/orders).
	OrderMarks OrderMarks
	OrderLog   OrderLog
	// RequestTimeout bounds each write of a click (the counters, the
	// event) and each API read.
	RequestTimeout time.Duration
	Metrics        *Metrics
	// RouteMetrics count and time every route.
	RouteMetrics *httpapi.RouteMetrics
	Log          *zap.Logger
	// Now is the clock (tests move it); nil: time.Now.
	Now func() time.Time
}

// API serves the routes.
type API struct {
	o  Options
	rt *httpapi.Router
}

// New builds the API's router.
func New(o Options) *API {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	a := &API{o: o}
	a.rt = httpapi.NewRouter(httpapi.RouterOptions{Token: o.Token, Metrics: o.RouteMetrics, Log: o.Log, Classify: classify})
	// A link is opened by whoever holds the message: the token is the
	// authority. Anything else under /c/ is the same plain 404.
	a.rt.Public("GET "+clicklink.Path+"{token}", "click", a.click)
	a.rt.Public("GET "+clicklink.Path, "click", func(w http.ResponseWriter, _ *http.Request) error {
		notFound(w)
		return nil
	})
	a.rt.Handle("GET /v1/notifications/{notification_id}/clicks", "notification_clicks", httpapi.Bounded(o.RequestTimeout, a.notificationClicks))
	a.rt.Handle("GET /v1/reports/performance", "report_performance", httpapi.Bounded(o.RequestTimeout, a.performance))
	a.rt.Handle("GET /v1/reports/demand", "report_demand", httpapi.Bounded(o.RequestTimeout, a.demand))
	a.rt.Handle("GET /v1/reports/lag", "report_lag", httpapi.Bounded(o.RequestTimeout, a.lag))
	// The page holds nothing secret: it asks for the API token and sends
	// it with each report request.
	a.rt.Public("GET /reports", "reports_page", a.page)
	a.rt.Handle("POST /v1/orders", "orders", httpapi.Bounded(o.RequestTimeout, a.postOrder))
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.rt.ServeHTTP(w, r) }

// classify makes a store that did not answer in time a 503.
func classify(err error) *httpapi.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		return httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "the store did not answer in time")
	}
	return nil
}
