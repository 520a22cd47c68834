// Package stock holds the inventory rules without I/O: what a valid stock
// update is, and when a level change is a restock. The Redis script in
// internal/store applies the same transition rule atomically; the table tests
// here and the store tests against redis-server keep the two in agreement.
package stock

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"backinstock/topics/events"
)

// State is what is stored per (sku, region).
type State struct {
	Quantity int64
	// Episode counts restocks so far (0 before the first).
	Episode int64
	// Armed is true while the sku is waiting to come back: it is set when the
	// level reaches 0 (or the sku was never seen) and cleared by a restock.
	// It makes a minimum threshold work: with a minimum of 3, 0 → 1 → 5 is
	// one restock (at 5), and 5 → 1 → 4 is none (never sold out).
	Armed bool
}

// Initial is the state of a (sku, region) never written: sold out and armed,
// so the first positive level of a new sku notifies its early wishlisters.
func Initial() State { return State{Armed: true} }

// Transition is the result of applying one new level.
type Transition struct {
	Previous int64
	Next     State
	// Restock is true when this update is a sold-out → available transition;
	// Next.Episode is then the new episode.
	Restock bool
}

// Apply is the transition rule: a level of 0 arms the sku; an armed sku
// whose new level is at least max(min, 1) restocks, which bumps the episode
// and disarms it.
func Apply(cur State, quantity, min int64) Transition {
	next := State{Quantity: quantity, Episode: cur.Episode, Armed: cur.Armed}
	if quantity <= 0 {
		next.Armed = true
	}
	restock := next.Armed && quantity > 0 && quantity >= min
	if restock {
		next.Episode++
		next.Armed = false
	}
	return Transition{Previous: cur.Quantity, Next: next, Restock: restock}
}

// Update is one requested level change, as the API receives it.
type Update struct {
	SKU      string
	Region   string
	Quantity int64
	Product  *events.Product
	Delivery *events.Delivery
	// Traceparent continues the caller's trace into the events, when valid.
	Traceparent string
}

// FieldError names the field of an update that is wrong.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Rules are the configured limits an update is checked against.
type Rules struct {
	Regions []string
}

// Check returns the first problem with u (field names as in the JSON body,
// prefixed by prefix, e.g. "updates[3]."), or nil.
func (r Rules) Check(prefix string, u Update) error {
	if err := events.CheckID(prefix+"sku", u.SKU); err != nil {
		return &FieldError{Field: prefix + "sku", Problem: problemOf(err)}
	}
	if u.Region == "" {
		return &FieldError{Field: prefix + "region", Problem: "required"}
	}
	if !slices.Contains(r.Regions, u.Region) {
		return &FieldError{Field: prefix + "region", Problem: fmt.Sprintf("unknown region %q (configured: %v)", u.Region, r.Regions)}
	}
	if u.Quantity < 0 || u.Quantity > events.MaxQuantity {
		return &FieldError{Field: prefix + "quantity", Problem: fmt.Sprintf("must be between 0 and %d, got %d", events.MaxQuantity, u.Quantity)}
	}
	if u.Product != nil || u.Delivery != nil {
		// The event types own the product and delivery rules; check them
		// through a sample event so the API accepts exactly what the topic does.
		ev := events.RestockEvent{
			SKU: u.SKU, Region: u.Region, Quantity: 1, Episode: 1,
			EventID: events.RestockEventID(u.SKU, u.Region, 1), OccurredAt: sampleTime,
			Product: u.Product, Delivery: u.Delivery,
		}
		var ve *events.ValidationError
		if err := ev.Validate(); errors.As(err, &ve) && len(ve.Problems) > 0 {
			return &FieldError{Field: prefix + ve.Problems[0].Field, Problem: ve.Problems[0].Problem}
		} else if err != nil {
			return &FieldError{Field: prefix + "product", Problem: err.Error()}
		}
	}
	return nil
}

func problemOf(err error) string {
	var fe *events.FieldError
	if errors.As(err, &fe) {
		return fe.Problem
	}
	return err.Error()
}

// sampleTime is any valid occurred_at for checking a sample event.
var sampleTime = time.Unix(1, 0).UTC()
