package wishes

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"backinstock/topics/events"
)

// ImportLine is one NDJSON line of a bulk import. At is optional: it sets
// the wishlist time (and so the order) of the entry, for loading a history;
// without it the entry gets the import time.
type ImportLine struct {
	UserID   string     `json:"user_id"`
	SKU      string     `json:"sku"`
	Region   string     `json:"region"`
	Channels []string   `json:"channels"`
	At       *time.Time `json:"at,omitempty"`
}

// ParseImportLine decodes and checks one line strictly (unknown fields, keys
// in another case and duplicate keys are errors, as in every request body)
// and returns the entry it stands for.
func ParseImportLine(line []byte, regions []string, now time.Time) (Entry, error) {
	var keyErrs []error
	for _, k := range events.CheckKeys(line, reflect.TypeFor[ImportLine]()) {
		keyErrs = append(keyErrs, k)
	}
	if len(keyErrs) > 0 {
		return Entry{}, errors.Join(keyErrs...)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var l ImportLine
	if err := dec.Decode(&l); err != nil {
		return Entry{}, fmt.Errorf("malformed JSON: %w", err)
	}
	if dec.More() {
		return Entry{}, errors.New("more than one JSON value on the line")
	}
	e := Entry{UserID: l.UserID, SKU: l.SKU, Region: l.Region, Channels: l.Channels, Since: now}
	if l.At != nil {
		e.Since = *l.At
	}
	if err := CheckEntry(e, regions); err != nil {
		return Entry{}, err
	}
	e.Channels = canonical(e.Channels)
	e.Since = time.UnixMilli(e.Since.UnixMilli())
	return e, nil
}
