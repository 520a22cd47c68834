// Package api is the inventory HTTP API: PUT /v1/stock/{sku}, POST /v1/stock
// (bulk) and GET /v1/stock/{sku}?region=. Every request is checked completely
// before anything is written, so a rejected request changes no stock and
// emits no event; Idempotency-Key makes writes safe to retry.
package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"

	"backinstock/services/inventory/internal/stock"
	"backinstock/services/inventory/internal/store"
	"backinstock/shared/config"
	"backinstock/shared/httpapi"
	"backinstock/topics/events"
)

// The defaults of Options; the service's flags take theirs from here.
const (
	DefaultMaxBodyBytes = 64 << 10
	DefaultBulkMaxBytes = 16 << 20
	DefaultBulkMaxItems = 10000
	// DefaultRequestTimeout: a few seconds, so a caller of a stalled store
	// learns it quickly and retries, yet far above a healthy write (a
	// 10,000-update bulk takes about 0.1 s).
	DefaultRequestTimeout = 4 * time.Second
)

// Options are the API's limits and its bearer token; zero limits take the
// defaults.
type Options struct {
	Token string
	Rules stock.Rules
	// MaxBodyBytes bounds a PUT body, BulkMaxBytes a bulk POST body.
	MaxBodyBytes int64
	BulkMaxBytes int64
	// BulkMaxItems is the most updates one bulk POST may carry.
	BulkMaxItems int
	// RequestTimeout bounds every request from the moment its body is read
	// to its answer: a store that does not answer in time gets a 503.
	RequestTimeout time.Duration
}

func (o *Options) setDefaults() {
	config.Default(&o.MaxBodyBytes, DefaultMaxBodyBytes)
	config.Default(&o.BulkMaxBytes, DefaultBulkMaxBytes)
	config.Default(&o.BulkMaxItems, DefaultBulkMaxItems)
	config.Default(&o.RequestTimeout, DefaultRequestTimeout)
}

// Validate names every wrong setting; a zero limit is not wrong, it takes the
// default.
func (o Options) Validate() error {
	var p config.Problems
	if len(o.Rules.Regions) == 0 {
		p.Addf("Rules.Regions", "at least one region is required")
	}
	config.NotNegative(&p, "MaxBodyBytes", o.MaxBodyBytes)
	config.NotNegative(&p, "BulkMaxBytes", o.BulkMaxBytes)
	config.NotNegative(&p, "BulkMaxItems", o.BulkMaxItems)
	config.NotNegative(&p, "RequestTimeout", o.RequestTimeout)
	return p.Err()
}

// API serves the stock endpoints, every one behind the bearer token.
type API struct {
	st     *store.Store
	o      Options
	log    *zap.Logger
	m      *Metrics
	router *httpapi.Router
	now    func() time.Time
}

// New returns the API handler.
func New(st *store.Store, o Options, log *zap.Logger, m *Metrics) (*API, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("configure stock API: %w", err)
	}
	o.setDefaults()
	a := &API{st: st, o: o, log: log, m: m, now: time.Now}
	a.router = httpapi.NewRouter(httpapi.RouterOptions{Token: o.Token, Metrics: m.HTTP, Log: log})
	a.router.Handle("PUT /v1/stock/{sku}", "put", a.put)
	a.router.Handle("POST /v1/stock", "bulk", a.bulk)
	a.router.Handle("GET /v1/stock/{sku}", "get", httpapi.Bounded(o.RequestTimeout, a.get))
	return a, nil
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

// putBody is the PUT /v1/stock/{sku} body.
type putBody struct {
	Region   string           `json:"region"`
	Quantity *int64           `json:"quantity"`
	Product  *events.Product  `json:"product,omitempty"`
	Delivery *events.Delivery `json:"delivery,omitempty"`
}

// bulkItem is one update of POST /v1/stock.
type bulkItem struct {
	SKU      string           `json:"sku"`
	Region   string           `json:"region"`
	Quantity *int64           `json:"quantity"`
	Product  *events.Product  `json:"product,omitempty"`
	Delivery *events.Delivery `json:"delivery,omitempty"`
}

type bulkBody struct {
	Updates []bulkItem `json:"updates"`
}

// ItemResult is one line of the bulk answer.
type ItemResult struct {
	Index  int `json:"index"`
	Status int `json:"status"`
	*store.Result
	Error *httpapi.Error `json:"error,omitempty"`
}

// BulkResponse is the bulk answer: one result per update, in order.
type BulkResponse struct {
	Applied  int          `json:"applied"`
	Rejected int          `json:"rejected"`
	Restocks int          `json:"restocks"`
	Results  []ItemResult `json:"results"`
}

// readBody reads the whole body within limit, so it can be both hashed for
// the idempotency record and decoded strictly.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, dst any) ([]byte, error) {
	body, err := httpapi.LimitBody(w, r, limit)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, httpapi.TooLarge(limit)
		}
		return nil, httpapi.BadRequest("read body: %v", err)
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	if err := httpapi.Decode(w, r, limit, dst); err != nil {
		return nil, err
	}
	return raw, nil
}

func quantityOf(prefix string, q *int64) (int64, error) {
	if q == nil {
		return 0, httpapi.Invalid("%squantity: required", prefix)
	}
	return *q, nil
}

func traceparent(r *http.Request) string {
	if tp := r.Header.Get("traceparent"); events.ValidTraceparent(tp) {
		return tp
	}
	return ""
}

func (a *API) put(w http.ResponseWriter, r *http.Request) error {
	sku := r.PathValue("sku")
	var body putBody
	raw, err := readBody(w, r, a.o.MaxBodyBytes, &body)
	if err != nil {
		a.m.Rejected.Inc()
		return err
	}
	q, err := quantityOf("", body.Quantity)
	if err != nil {
		a.m.Rejected.Inc()
		return err
	}
	u := stock.Update{SKU: sku, Region: body.Region, Quantity: q, Product: body.Product, Delivery: body.Delivery, Traceparent: traceparent(r)}
	if err := a.o.Rules.Check("", u); err != nil {
		a.m.Rejected.Inc()
		return httpapi.Invalid("%s", err.Error())
	}
	return a.write(w, r, raw, []stock.Update{u}, func(res []store.Result) (any, error) { return res[0], nil })
}

func (a *API) bulk(w http.ResponseWriter, r *http.Request) error {
	var body bulkBody
	raw, err := readBody(w, r, a.o.BulkMaxBytes, &body)
	if err != nil {
		a.m.Rejected.Inc()
		return err
	}
	if len(body.Updates) == 0 {
		return httpapi.Invalid("updates: at least one update is required")
	}
	if len(body.Updates) > a.o.BulkMaxItems {
		return httpapi.Invalid("updates: at most %d updates per request, got %d", a.o.BulkMaxItems, len(body.Updates))
	}
	tp := traceparent(r)
	resp := BulkResponse{Results: make([]ItemResult, len(body.Updates))}
	valid := make([]stock.Update, 0, len(body.Updates))
	validIdx := make([]int, 0, len(body.Updates))
	for i, it := range body.Updates {
		prefix := "updates[" + strconv.Itoa(i) + "]."
		resp.Results[i].Index = i
		q, err := quantityOf(prefix, it.Quantity)
		if err == nil {
			u := stock.Update{SKU: it.SKU, Region: it.Region, Quantity: q, Product: it.Product, Delivery: it.Delivery, Traceparent: tp}
			if cerr := a.o.Rules.Check(prefix, u); cerr != nil {
				err = httpapi.Invalid("%s", cerr.Error())
			} else {
				valid = append(valid, u)
				validIdx = append(validIdx, i)
				continue
			}
		}
		var e *httpapi.Error
		errors.As(err, &e)
		resp.Results[i].Status, resp.Results[i].Error = e.Status, e
		resp.Rejected++
	}
	a.m.Rejected.Add(float64(resp.Rejected))
	return a.write(w, r, raw, valid, func(res []store.Result) (any, error) {
		for j, i := range validIdx {
			resp.Results[i].Status = http.StatusOK
			resp.Results[i].Result = &res[j]
			if res[j].Restock {
				resp.Restocks++
			}
		}
		resp.Applied = len(res)
		return resp, nil
	})
}

// write applies updates and answers, honouring Idempotency-Key, within
// RequestTimeout. The claim and the scripts get the budget less its last
// part (finishing), which records the answer or releases the key, so the
// answer comes in time even when Redis stalls at the last moment.
//
// A 503 here means the outcome is unknown: a script sent before the deadline
// may still run once a stalled Redis resumes. A retry with the same key
// learns it: the claim of the failed attempt ended with its deadline, and
// each chunk's record answers what the first run applied (see store.Begin).
func (a *API) write(w http.ResponseWriter, r *http.Request, raw []byte, updates []stock.Update, answer func([]store.Result) (any, error)) error {
	key, err := idempotencyKey(r)
	if err != nil {
		return err
	}
	now := a.now()
	deadline := now.Add(a.o.RequestTimeout)
	// The claim lasts as long as this attempt may send scripts (work), so a
	// retry after its 503 never meets it.
	work := deadline.Add(-finishing(a.o.RequestTimeout))
	ctx, cancel := context.WithDeadline(r.Context(), work)
	defer cancel()
	fctx, fcancel := context.WithDeadline(context.WithoutCancel(r.Context()), deadline)
	defer fcancel()
	var claim store.Claim
	if key != "" {
		claim, err = a.st.Begin(ctx, now, work, key, RequestHash(r.Method, r.URL.Path, raw))
		if err != nil {
			return unconfirmed(err)
		}
		switch claim.State {
		case store.Busy:
			return httpapi.Errorf(http.StatusConflict, "in_flight", "Idempotency-Key: a request with this key is still in progress (for at most %s); retry", a.o.RequestTimeout)
		case store.Mismatch:
			return httpapi.Errorf(http.StatusUnprocessableEntity, "idempotency_key_reused", "Idempotency-Key: the key was already used with a different request")
		case store.Done:
			a.m.Replays.Inc()
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(claim.Stored.Status)
			_, _ = w.Write(claim.Stored.Body)
			return nil
		}
	}
	var res []store.Result
	if len(updates) > 0 {
		res, err = a.st.Apply(ctx, now, updates, key)
		if err != nil {
			if key != "" {
				if aerr := a.st.Abandon(fctx, key, claim); aerr != nil {
					a.log.Debug("release idempotency key", zap.Error(aerr))
				}
			}
			return unconfirmed(err)
		}
	}
	replayed := len(res) > 0
	for _, x := range res {
		replayed = replayed && x.Replayed
	}
	if replayed {
		a.m.Replays.Inc()
	}
	a.m.count(res)
	v, err := answer(res)
	if err != nil {
		return err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode answer: %w", err)
	}
	body = append(body, '\n')
	if key != "" {
		// The updates are applied; if the answer cannot be stored, a retry
		// re-runs and the chunk records answer the same results.
		if err := a.st.Finish(fctx, key, store.Stored{Status: http.StatusOK, Body: body}); err != nil {
			a.log.Warn("idempotent answer not stored", zap.Error(err))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if replayed {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// finishing is the part of a write's budget kept for recording its answer
// (or releasing its key) after the scripts: a quarter, at most a second.
func finishing(budget time.Duration) time.Duration { return min(budget/4, time.Second) }

// idempotencyKey returns the hashed Idempotency-Key (safe in Redis keys), or
// "" when there is none.
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get("Idempotency-Key")
	if k == "" {
		return "", nil
	}
	if len(k) > 255 {
		return "", httpapi.Invalid("Idempotency-Key: at most 255 characters")
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", httpapi.Invalid("Idempotency-Key: only visible ASCII characters")
		}
	}
	return KeyID(k), nil
}

func unavailable(err error) error {
	return fmt.Errorf("%w (%w)", httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "stock store unavailable; retry"), err)
}

// unconfirmed is the 503 of a write whose outcome is unknown.
func unconfirmed(err error) error {
	return fmt.Errorf("%w (%w)", httpapi.Errorf(http.StatusServiceUnavailable, "unavailable",
		"stock store unavailable: the write may or may not have been applied; retry with the same Idempotency-Key to apply it once and learn its result"), err)
}

func (a *API) get(w http.ResponseWriter, r *http.Request) error {
	sku, region := r.PathValue("sku"), r.URL.Query().Get("region")
	if err := a.o.Rules.Check("", stock.Update{SKU: sku, Region: region}); err != nil {
		return httpapi.Invalid("%s", err.Error())
	}
	lvl, err := a.st.Get(r.Context(), sku, region)
	if errors.Is(err, store.ErrNotFound) {
		return httpapi.Errorf(http.StatusNotFound, "not_found", "sku %q has no stock level in region %q", sku, region)
	}
	if err != nil {
		return unavailable(err)
	}
	httpapi.WriteJSON(w, http.StatusOK, lvl)
	return nil
}

// KeyID is the form an Idempotency-Key takes in Redis keys.
func KeyID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16])
}

// RequestHash identifies a request's content for its Idempotency-Key: the
// same key with another method, path or body is a different request.
func RequestHash(method, path string, body []byte) string {
	sum := sha256.Sum256([]byte(method + "\n" + path + "\n" + string(body)))
	return hex.EncodeToString(sum[:])
}
