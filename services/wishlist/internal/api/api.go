// Package api is the wishlist HTTP API: entries, preferences, counts and the
// bulk import, behind a bearer token, with strict bounded JSON and one error
// body shape. Every check runs before anything is written, so a rejected
// request changes nothing.
package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/privacy"
	"backinstock/services/wishlist/internal/service"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/config"
	"backinstock/shared/httpapi"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// Options configure the API. A zero limit means its default; a negative
// one is refused by Handler.
type Options struct {
	Token   string
	Regions []string
	// MaxBodyBytes bounds a JSON body.
	MaxBodyBytes int64
	// MaxImportBytes bounds an import body; it is streamed, not held.
	MaxImportBytes int64
	// ImportBatch is the lines written per pipeline during an import.
	ImportBatch int
	// ImportTimeout bounds one import request.
	ImportTimeout time.Duration
	// RequestTimeout bounds every other request: a store that does not
	// answer in time gets a 503 (the change may or may not be applied;
	// every write here is idempotent, so repeating it is safe).
	RequestTimeout time.Duration
	// PrivacyTimeout bounds an export or an erasure: they walk the Redis
	// keyspace and the edge streams, which takes longer than a write.
	PrivacyTimeout time.Duration
	// Privacy reads and erases what the other services keep about a user;
	// nil (or one without the edge): the export and erasure answer 503.
	Privacy *privacy.Finder
	// Unsubscribe are the keys that verify one-click unsubscribe tokens
	// (UNSUBSCRIBE_KEYS); without keys the public unsubscribe routes
	// answer 404.
	Unsubscribe unsubscribe.Keys
}

// Defaults are the limits a zero field of Options gets; the serve
// command's flags default to them too.
func Defaults() Options {
	return Options{MaxBodyBytes: 64 << 10, MaxImportBytes: 1 << 30, ImportBatch: 2000, ImportTimeout: time.Hour, RequestTimeout: 4 * time.Second, PrivacyTimeout: 30 * time.Second}
}

func (o *Options) setDefaults() {
	d := Defaults()
	config.Default(&o.MaxBodyBytes, d.MaxBodyBytes)
	config.Default(&o.MaxImportBytes, d.MaxImportBytes)
	config.Default(&o.ImportBatch, d.ImportBatch)
	config.Default(&o.ImportTimeout, d.ImportTimeout)
	config.Default(&o.RequestTimeout, d.RequestTimeout)
	config.Default(&o.PrivacyTimeout, d.PrivacyTimeout)
}

// Validate names every option that is wrong.
func (o Options) Validate() error {
	var p config.Problems
	if o.Token == "" {
		p.Addf("Token", "required")
	}
	config.NotNegative(&p, "MaxBodyBytes", o.MaxBodyBytes)
	config.NotNegative(&p, "MaxImportBytes", o.MaxImportBytes)
	config.NotNegative(&p, "ImportBatch", o.ImportBatch)
	config.NotNegative(&p, "ImportTimeout", o.ImportTimeout)
	config.NotNegative(&p, "RequestTimeout", o.RequestTimeout)
	config.NotNegative(&p, "PrivacyTimeout", o.PrivacyTimeout)
	return p.Err()
}

// Metrics are the API's Prometheus metrics.
type Metrics struct {
	// HTTP counts and times the routes (backinstock_wishlist_http_*).
	HTTP        *httpapi.RouteMetrics
	ImportLines *prometheus.CounterVec
	privacy     privacyMetrics
}

// NewMetrics registers the API metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		HTTP: httpapi.NewRouteMetrics(reg, "wishlist"),
		ImportLines: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "backinstock_wishlist_import_lines_total",
			Help: "Bulk-import lines by result (imported, rejected)."}, []string{"result"}),
		privacy: newPrivacyMetrics(reg),
	}
	if reg != nil {
		reg.MustRegister(m.ImportLines)
	}
	return m
}

// API serves the routes.
type API struct {
	o   Options
	svc *service.Service
	m   *Metrics
	log *zap.Logger
}

// Handler returns the API's handler; every route but the one-click
// unsubscribe needs the token.
func Handler(o Options, svc *service.Service, m *Metrics, log *zap.Logger) (http.Handler, error) {
	o.setDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("wishlist api options: %w", err)
	}
	a := &API{o: o, svc: svc, m: m, log: log}
	rt := httpapi.NewRouter(httpapi.RouterOptions{Token: o.Token, Metrics: m.HTTP, Log: log, Classify: classify})
	bounded := func(h httpapi.HandlerFunc) httpapi.HandlerFunc { return httpapi.Bounded(o.RequestTimeout, h) }
	rt.Handle("PUT /v1/users/{user_id}/wishlist/{sku}", "put_entry", bounded(a.putEntry))
	rt.Handle("DELETE /v1/users/{user_id}/wishlist/{sku}", "delete_entry", bounded(a.deleteEntry))
	rt.Handle("GET /v1/users/{user_id}/wishlist", "list_entries", bounded(a.listEntries))
	rt.Handle("GET /v1/skus/{sku}/wishlisters", "count_wishlisters", bounded(a.countWishlisters))
	rt.Handle("PUT /v1/users/{user_id}/preferences", "put_preferences", bounded(a.putPrefs))
	rt.Handle("GET /v1/users/{user_id}/preferences", "get_preferences", bounded(a.getPrefs))
	rt.Handle("PUT "+events.DevicePath, "put_device", bounded(a.putDevice))
	rt.Handle("DELETE "+events.DevicePath, "delete_device", bounded(a.deleteDevice))
	rt.Handle("GET /v1/users/{user_id}/devices", "list_devices", bounded(a.listDevices))
	rt.Handle("GET /v1/users/{user_id}/export", "export_user", httpapi.Bounded(o.PrivacyTimeout, a.exportUser))
	rt.Handle("DELETE /v1/users/{user_id}", "erase_user", httpapi.Bounded(o.PrivacyTimeout, a.eraseUser))
	// An import streams for as long as its body: ImportTimeout bounds it.
	rt.Handle("POST /v1/wishlists:import", "import", a.importEntries)
	rt.Public("GET "+unsubscribe.Path, "unsubscribe_form", htmlErrors(bounded(a.unsubscribeForm)))
	rt.Public("POST "+unsubscribe.Path, "unsubscribe", htmlErrors(bounded(a.unsubscribe)))
	return rt, nil
}

// classify maps rule violations to 422 and anything else (a store or log
// that failed, logged by the router) to 503.
func classify(err error) *httpapi.Error {
	var (
		fe *wishes.FieldError
		ee *events.FieldError
		ve *events.ValidationError
	)
	switch {
	case errors.As(err, &fe), errors.As(err, &ee), errors.As(err, &ve):
		return httpapi.Invalid("%s", err.Error())
	default:
		return httpapi.Errorf(http.StatusServiceUnavailable, "unavailable",
			"the wishlist store or log is unavailable: a change may or may not have been applied; repeat the request (every wishlist write is idempotent)")
	}
}

func pathIDs(r *http.Request, names ...string) ([]string, error) {
	out := make([]string, len(names))
	var errs []error
	for i, n := range names {
		out[i] = r.PathValue(n)
		errs = append(errs, events.CheckID(n, out[i]))
	}
	return out, errors.Join(errs...)
}

type entryBody struct {
	Region   string   `json:"region"`
	Channels []string `json:"channels,omitempty"`
}

type entryView struct {
	UserID   string    `json:"user_id"`
	SKU      string    `json:"sku"`
	Region   string    `json:"region"`
	Channels []string  `json:"channels"`
	Since    time.Time `json:"since"`
}

func viewOf(e wishes.Entry) entryView {
	return entryView{UserID: e.UserID, SKU: e.SKU, Region: e.Region, Channels: e.Channels, Since: e.Since.UTC()}
}

func (a *API) putEntry(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id", "sku")
	if err != nil {
		return err
	}
	var body entryBody
	if err := httpapi.Decode(w, r, a.o.MaxBodyBytes, &body); err != nil {
		return err
	}
	if err := wishes.CheckRegion("region", body.Region, a.o.Regions); err != nil {
		return err
	}
	if err := wishes.CheckChannels("channels", body.Channels, false); err != nil {
		return err
	}
	chans := body.Channels
	if len(chans) == 0 {
		prefs, err := a.svc.Store.Prefs(r.Context(), ids[0])
		if err != nil {
			return err
		}
		if prefs == nil || len(prefs.Channels) == 0 {
			return httpapi.Invalid("channels: required (the user has no default channels in their preferences)")
		}
		chans = prefs.Channels
	}
	e := wishes.Entry{UserID: ids[0], SKU: ids[1], Region: body.Region, Channels: chans}
	if err := wishes.CheckEntry(e, a.o.Regions); err != nil {
		return err
	}
	stored, err := a.svc.Put(r.Context(), []wishes.Entry{e})
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, viewOf(stored[0]))
	return nil
}

func (a *API) deleteEntry(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id", "sku")
	if err != nil {
		return err
	}
	found, err := a.svc.Remove(r.Context(), ids[0], ids[1])
	if err != nil {
		return err
	}
	if !found {
		return httpapi.Errorf(http.StatusNotFound, "not_found", "user %s has no wishlist entry for %s", ids[0], ids[1])
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listEntries(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id")
	if err != nil {
		return err
	}
	entries, _, err := a.svc.Store.Entries(r.Context(), ids[0])
	if err != nil {
		return err
	}
	items := make([]entryView, len(entries))
	for i, e := range entries {
		items[i] = viewOf(e)
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"user_id": ids[0], "items": items})
	return nil
}

func (a *API) countWishlisters(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "sku")
	if err != nil {
		return err
	}
	regions := a.o.Regions
	if q := r.URL.Query(); q.Has("region") {
		if err := wishes.CheckRegion("region", q.Get("region"), a.o.Regions); err != nil {
			return err
		}
		regions = []string{q.Get("region")}
	}
	counts, err := a.svc.Store.Count(r.Context(), ids[0], regions)
	if err != nil {
		return err
	}
	if len(regions) == 1 {
		httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sku": ids[0], "region": regions[0], "count": counts[regions[0]]})
		return nil
	}
	var total int64
	for _, c := range counts {
		total += c
	}
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"sku": ids[0], "counts": counts, "total": total})
	return nil
}

func (a *API) putPrefs(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id")
	if err != nil {
		return err
	}
	var p wishes.Preferences
	if err := httpapi.Decode(w, r, a.o.MaxBodyBytes, &p); err != nil {
		return err
	}
	if len(p.Devices) > 0 {
		return &wishes.FieldError{Field: "devices", Problem: "set through PUT and DELETE /v1/users/{user_id}/devices/{device_id}, not with the preferences (which keep the stored devices)"}
	}
	if err := wishes.CheckPreferences(ids[0], p); err != nil {
		return err
	}
	stored, err := a.svc.SetPrefs(r.Context(), ids[0], &p)
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, prefsView(ids[0], stored))
	return nil
}

// prefsView shows preferences without the devices: the device routes list
// and change them, so what GET shows can be PUT back as it is.
func prefsView(userID string, p *wishes.Preferences) map[string]any {
	v := wishes.Preferences{}
	if p != nil {
		v = *p
	}
	v.Devices = nil
	return map[string]any{"user_id": userID, "preferences": v}
}

func (a *API) getPrefs(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id")
	if err != nil {
		return err
	}
	p, err := a.svc.Store.Prefs(r.Context(), ids[0])
	if err != nil {
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, prefsView(ids[0], p))
	return nil
}

// importEntries streams an NDJSON body into the store in batches; bad lines
// are reported (the first 100) and skipped.
func (a *API) importEntries(w http.ResponseWriter, r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		return httpapi.Errorf(http.StatusUnsupportedMediaType, "unsupported_media_type", "content-type must be application/x-ndjson, got %q", ct)
	}
	// The server's read and write timeouts suit small requests; an import
	// of millions of lines streams for longer, so this request gets its own.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(a.o.ImportTimeout))
	_ = rc.SetWriteDeadline(time.Now().Add(a.o.ImportTimeout + time.Minute))
	body, err := httpapi.LimitBody(w, r, a.o.MaxImportBytes)
	if err != nil {
		return err
	}
	res, err := a.svc.Import(r.Context(), body, a.o.ImportBatch)
	a.m.ImportLines.WithLabelValues("imported").Add(float64(res.Imported))
	a.m.ImportLines.WithLabelValues("rejected").Add(float64(res.Rejected))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return httpapi.Errorf(http.StatusRequestEntityTooLarge, "too_large", "body exceeds %d bytes; %d lines were imported before the limit", a.o.MaxImportBytes, res.Imported)
	case errors.Is(err, service.ErrLineTooLong):
		return httpapi.BadRequest("%v; %d lines were imported before it", err, res.Imported)
	case err != nil:
		return err
	}
	httpapi.WriteJSON(w, http.StatusOK, res)
	return nil
}
