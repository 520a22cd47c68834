package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Validator is what every event type implements: Validate returns a
// *ValidationError listing every problem, or nil.
type Validator interface {
	Validate() error
}

// Encode validates v and returns its JSON encoding. Producers use it instead
// of json.Marshal so an invalid value never reaches a topic, where every
// consumer would have to dead-letter it.
func Encode(v Validator) ([]byte, error) {
	if err := v.Validate(); err != nil {
		return nil, err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", v, err)
	}
	return data, nil
}

// DecodeRestockEvent decodes and validates one RestockEvent.
func DecodeRestockEvent(data []byte) (RestockEvent, error) {
	var v RestockEvent
	err := decodeStrict(SchemaRestockEvent, data, &v)
	return v, err
}

// DecodeStockLevel decodes and validates one StockLevel.
func DecodeStockLevel(data []byte) (StockLevel, error) {
	var v StockLevel
	err := decodeStrict(SchemaStockLevel, data, &v)
	return v, err
}

// DecodeWishlistChange decodes and validates one WishlistChange.
func DecodeWishlistChange(data []byte) (WishlistChange, error) {
	var v WishlistChange
	err := decodeStrict(SchemaWishlistChange, data, &v)
	return v, err
}

// DecodeWishlistPreferences decodes and validates one WishlistPreferences
// (the value of a "<user_id>|~prefs" record; a tombstone has no value to
// decode).
func DecodeWishlistPreferences(data []byte) (WishlistPreferences, error) {
	var v WishlistPreferences
	err := decodeStrict(SchemaWishlistPreferences, data, &v)
	return v, err
}

// DecodeNotification decodes and validates one Notification.
func DecodeNotification(data []byte) (Notification, error) {
	var v Notification
	if quickNotification(data, &v) {
		return v, v.Validate()
	}
	v = Notification{}
	err := decodeStrict(SchemaNotification, data, &v)
	return v, err
}

// DecodeDeliveryStatus decodes and validates one DeliveryStatus.
func DecodeDeliveryStatus(data []byte) (DeliveryStatus, error) {
	var v DeliveryStatus
	err := decodeStrict(SchemaDeliveryStatus, data, &v)
	return v, err
}

// decodeStrict is stricter than encoding/json on purpose: exactly one JSON
// value; keys matched exactly (encoding/json matches them case-insensitively);
// no unknown keys at any depth; no key twice in one object (encoding/json
// keeps the last); no nulls (an absent optional field is
// omitted); every field whose tag has no omitempty/omitzero present, even
// when its zero value would be valid (previous_quantity: 0 must be said, not
// implied). Each problem names the JSON path of the field. Then Validate runs.
//
// The common case, a well-formed record, takes a fast path: one allocation-free
// pass over the bytes checks the shape, then encoding/json decodes. Anything
// the fast pass does not like goes through the slow path, which finds and
// names every problem.
func decodeStrict[T Validator](typ string, data []byte, v *T) error {
	if quickShape(data, reflect.TypeFor[T]()) {
		if err := json.Unmarshal(data, v); err == nil {
			return (*v).Validate()
		}
		var zero T
		*v = zero
	}
	return decodeSlow(typ, data, v)
}

// decodeSlow checks the keys with CheckKeys and the shape with checkShape,
// which name each problem.
func decodeSlow[T Validator](typ string, data []byte, v *T) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return &ValidationError{Type: typ, Problems: []*FieldError{{Problem: "empty input, want a JSON object"}}}
		}
		return &ValidationError{Type: typ, Problems: []*FieldError{{Problem: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &ValidationError{Type: typ, Problems: []*FieldError{{Problem: "unexpected data after the JSON object"}}}
	}
	p := &problems{typ: typ}
	for _, k := range CheckKeys(raw, reflect.TypeFor[T]()) {
		switch {
		case k.Duplicate:
			p.add(k.Field(), "duplicate key")
		case k.Want != "":
			p.add(k.Field(), "unknown field (did you mean "+strconv.Quote(join(k.Path, k.Want))+"?)")
		default:
			p.add(k.Field(), "unknown field")
		}
	}
	checkShape(p, "", raw, reflect.TypeFor[T]())
	if err := p.err(); err != nil {
		return err
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	if err := strict.Decode(v); err != nil {
		// checkShape has already accepted the shape; this is a gap in it.
		return &ValidationError{Type: typ, Problems: []*FieldError{{Problem: strings.TrimPrefix(err.Error(), "json: ")}}}
	}
	return (*v).Validate()
}

var timeType = reflect.TypeFor[time.Time]()

// checkShape checks raw against the Go type t, recording every problem but
// the keys, which CheckKeys has checked (a map keeps one of duplicate keys).
func checkShape(p *problems, path string, raw json.RawMessage, t reflect.Type) {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		p.add(path, "must not be null")
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		var tm time.Time
		if raw[0] != '"' || json.Unmarshal(raw, &tm) != nil {
			p.add(path, "must be an RFC 3339 date-time string, e.g. 2025-01-02T15:04:05Z")
		}
	case t.Kind() == reflect.Struct:
		var obj map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
			p.add(path, "must be an object")
			return
		}
		info := fieldsOf(t)
		for _, f := range info.fields {
			if _, ok := obj[f.name]; !ok && f.required {
				p.add(join(path, f.name), "required")
			}
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			f, ok := info.byName[k]
			if !ok {
				continue // CheckKeys has reported it
			}
			if !f.required {
				// An optional field is either there with a value or absent.
				switch v := string(bytes.TrimSpace(obj[k])); {
				case v == "null":
					p.add(join(path, k), "must not be null; omit the field instead")
					continue
				case v == `""` && f.typ.Kind() == reflect.String:
					p.add(join(path, k), "must not be empty; omit the field instead")
					continue
				}
			}
			checkShape(p, join(path, k), obj[k], f.typ)
		}
	case t.Kind() == reflect.Slice:
		var arr []json.RawMessage
		if raw[0] != '[' || json.Unmarshal(raw, &arr) != nil {
			p.add(path, "must be an array")
			return
		}
		for i, el := range arr {
			checkShape(p, path+"["+strconv.Itoa(i)+"]", el, t.Elem())
		}
	case t.Kind() == reflect.Map:
		var obj map[string]json.RawMessage
		if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
			p.add(path, "must be an object")
			return
		}
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			checkShape(p, join(path, k), obj[k], t.Elem())
		}
	case t.Kind() == reflect.String:
		if raw[0] != '"' {
			p.add(path, "must be a string")
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		if _, err := strconv.ParseInt(string(raw), 10, t.Bits()); err != nil {
			p.add(path, "must be an integer (no fraction, no exponent) in the int"+strconv.Itoa(t.Bits())+" range")
		}
	case t.Kind() == reflect.Bool:
		if string(raw) != "true" && string(raw) != "false" {
			p.add(path, "must be true or false")
		}
	default:
		p.add(path, "has a Go type the decoder does not know: "+t.String())
	}
}

type fieldInfo struct {
	name     string
	typ      reflect.Type
	required bool
}

type structInfo struct {
	fields       []fieldInfo
	byName       map[string]fieldInfo
	index        map[string]int // position in fields
	requiredMask uint64         // bit i set when fields[i] is required (first 64 fields)
}

// structInfos memoizes fieldsOf: the reflection is the same for every record.
var structInfos sync.Map // reflect.Type -> *structInfo

// fieldsOf lists the JSON fields of struct type t. A field is required when
// its tag has neither omitempty nor omitzero: what the encoder always writes,
// the decoder always wants.
func fieldsOf(t reflect.Type) *structInfo {
	if v, ok := structInfos.Load(t); ok {
		return v.(*structInfo)
	}
	info := &structInfo{byName: map[string]fieldInfo{}, index: map[string]int{}}
	var embedded []reflect.Type
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if ft := sf.Type; sf.Anonymous && name == "" {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				// encoding/json promotes an untagged embedded struct's
				// fields; the outer struct's own names win.
				embedded = append(embedded, ft)
				continue
			}
		}
		if !sf.IsExported() {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		f := fieldInfo{name: name, typ: sf.Type, required: true}
		for _, o := range strings.Split(opts, ",") {
			if o == "omitempty" || o == "omitzero" {
				f.required = false
			}
		}
		info.add(f)
	}
	for _, et := range embedded {
		for _, f := range fieldsOf(et).fields {
			if _, taken := info.byName[f.name]; !taken {
				info.add(f)
			}
		}
	}
	v, _ := structInfos.LoadOrStore(t, info)
	return v.(*structInfo)
}

func (info *structInfo) add(f fieldInfo) {
	if f.required && len(info.fields) < 64 {
		info.requiredMask |= 1 << len(info.fields)
	}
	info.index[f.name] = len(info.fields)
	info.fields = append(info.fields, f)
	info.byName[f.name] = f
}
