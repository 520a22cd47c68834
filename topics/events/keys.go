package events

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// KeyError is an object key that strict decoding refuses: a key seen twice
// in one object (encoding/json keeps the last, so {"quantity":0,"quantity":5}
// would silently mean 5), or a key of a struct that is not exactly one of its
// JSON field names (encoding/json matches them case-insensitively).
type KeyError struct {
	// Path is the JSON path of the object holding the key; "" is the top level.
	Path string
	Key  string
	// Duplicate is set for a key seen earlier in the same object; otherwise
	// the key is unknown.
	Duplicate bool
	// Want is the field name an unknown key matches in another case, if any.
	Want string
}

// Field is the JSON path of the key itself.
func (e *KeyError) Field() string { return join(e.Path, e.Key) }

func (e *KeyError) Error() string {
	switch {
	case e.Duplicate:
		return fmt.Sprintf("duplicate key %q", e.Field())
	case e.Want != "":
		return fmt.Sprintf("unknown key %q (did you mean %q?)", e.Field(), join(e.Path, e.Want))
	default:
		return fmt.Sprintf("unknown key %q", e.Field())
	}
}

// CheckKeys walks data, one JSON value, and returns every key that decoding
// it into a value of type t must refuse: duplicates in any object, and keys
// of an object bound for a struct that are not exactly one of the struct's
// JSON names. Objects bound for a map, an interface or a type with its own
// UnmarshalJSON/UnmarshalText are checked for duplicates only. data must be
// valid JSON (callers decode it into a json.RawMessage first); a syntax
// error ends the walk with what was found before it.
//
// It is hand-written because encoding/json has no option for either check,
// and encoding/json/v2, which rejects duplicates, still needs
// GOEXPERIMENT=jsonv2 in Go 1.26. It is the one implementation: the event
// decoders and shared/httpapi both use it.
func CheckKeys(data []byte, t reflect.Type) []*KeyError {
	w := keyWalker{dec: json.NewDecoder(bytes.NewReader(data))}
	w.dec.UseNumber() // numbers are skipped; do not parse them
	_ = w.value("", t)
	return w.found
}

type keyWalker struct {
	dec   *json.Decoder
	found []*KeyError
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// value walks the next value, bound for a Go value of type t (nil when
// nothing binds it: only duplicates are looked for).
func (w *keyWalker) value(path string, t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && (reflect.PointerTo(t).Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)) {
		t = nil // the type reads its own keys
	}
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return w.object(path, t)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(path+"["+strconv.Itoa(i)+"]", elem); err != nil {
				return err
			}
		}
		_, err := w.dec.Token() // ']'
		return err
	}
	return nil
}

func (w *keyWalker) object(path string, t reflect.Type) error {
	var info *structInfo
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		info = fieldsOf(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := make(map[string]bool)
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		valType, known := elem, true
		if info != nil {
			var f fieldInfo
			f, known = info.byName[key]
			valType = f.typ // nil for an unknown key: its keys are checked for duplicates only
		}
		switch {
		case seen[key]:
			w.found = append(w.found, &KeyError{Path: path, Key: key, Duplicate: true})
		case !known:
			w.found = append(w.found, &KeyError{Path: path, Key: key, Want: info.fold(key)})
		}
		seen[key] = true
		if err := w.value(join(path, key), valType); err != nil {
			return err
		}
	}
	_, err := w.dec.Token() // '}'
	return err
}

// fold returns the field name that key matches ignoring case, or "".
func (info *structInfo) fold(key string) string {
	for _, f := range info.fields {
		if strings.EqualFold(f.name, key) {
			return f.name
		}
	}
	return ""
}
