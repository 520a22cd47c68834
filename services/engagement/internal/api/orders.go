package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"backinstock/services/engagement/internal/ordermark"
	"backinstock/shared/httpapi"
	"backinstock/topics/events"
)

// MaxOrderBytes bounds a POST /v1/orders body: 100 lines of some 100
// bytes each, with room to spare.
const MaxOrderBytes = 64 << 10

// OrderMarks make POST /v1/orders idempotent by order id
// (internal/ordermark).
type OrderMarks interface {
	Claim(ctx context.Context, orderID, hash string) (ordermark.State, error)
	Done(ctx context.Context, orderID, hash string) error
	Release(ctx context.Context, orderID, hash string) error
}

// OrderLog writes orders to orders.v1 (internal/eventlog).
type OrderLog interface {
	Write(ctx context.Context, o events.Order) error
}

// OrderAccepted is the answer of POST /v1/orders, the same for the first
// post of an order and for each repeat of the same body.
type OrderAccepted struct {
	OrderID string `json:"order_id"`
	Lines   int    `json:"lines"`
	Status  string `json:"status"`
}

// postOrder is POST /v1/orders: a valid order is written to orders.v1
// (acks=all) before the 202; the same order id with the same body answers
// the same 202 again, with another body 409. Nothing is written for a bad
// body (400 when it cannot be read, 422 naming each bad field).
func (a *API) postOrder(w http.ResponseWriter, r *http.Request) error {
	var o events.Order
	if err := httpapi.Decode(w, r, MaxOrderBytes, &o); err != nil {
		return err
	}
	// One instant has one spelling, so the same order posted with another
	// offset is the same body.
	o.OrderedAt = o.OrderedAt.UTC()
	if err := o.Validate(); err != nil {
		return invalid(err)
	}
	canonical, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encode order %s: %w", o.OrderID, err)
	}
	hash := ordermark.Hash(canonical)
	ctx := r.Context()
	state, err := a.o.OrderMarks.Claim(ctx, o.OrderID, hash)
	if err != nil {
		return unavailable("order store", err)
	}
	answer := OrderAccepted{OrderID: o.OrderID, Lines: len(o.Lines), Status: "accepted"}
	switch state {
	case ordermark.Conflict:
		return httpapi.Errorf(http.StatusConflict, "conflict", "order_id: order %s was already accepted with another body", o.OrderID)
	case ordermark.Done:
		httpapi.WriteJSON(w, http.StatusAccepted, answer)
		return nil
	}
	if err := a.o.OrderLog.Write(ctx, o); err != nil {
		// Without the record there is no order: free the id for a retry
		// (its own deadline: the request's may be what ran out).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.o.RequestTimeout)
		if rerr := a.o.OrderMarks.Release(rctx, o.OrderID, hash); rerr != nil {
			a.o.Log.Warn("order claim left to expire", zap.String("order_id", o.OrderID), zap.Error(rerr))
		}
		cancel()
		return unavailable("orders topic", err)
	}
	if state == ordermark.Fresh {
		a.o.Metrics.orders.Inc()
	}
	if err := a.o.OrderMarks.Done(ctx, o.OrderID, hash); err != nil {
		// The order is written; a repeat within a minute writes it again,
		// which the attribution counts once.
		a.o.Log.Warn("order written but not marked done", zap.String("order_id", o.OrderID), zap.Error(err))
	}
	httpapi.WriteJSON(w, http.StatusAccepted, answer)
	return nil
}

// invalid is the 422 naming every bad field of an event.
func invalid(err error) error {
	var ve *events.ValidationError
	if !errors.As(err, &ve) {
		return httpapi.Invalid("%v", err)
	}
	msgs := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		msgs[i] = p.Error()
	}
	return httpapi.Invalid("%s", strings.Join(msgs, "; "))
}

// unavailable is the 503 of a store or topic that failed or did not answer
// in time: nothing was accepted, a retry is safe.
func unavailable(what string, err error) error {
	return fmt.Errorf("%w (%w)", httpapi.Errorf(http.StatusServiceUnavailable, "unavailable", "%s unavailable: the order was not accepted; retry", what), err)
}
