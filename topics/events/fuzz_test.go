package events_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"backinstock/topics/events"
)

// The record decoders are what every consumer runs on bytes from Kafka, so
// each gets a fuzz target: whatever the bytes, a decoder returns (no panic);
// what it accepts is valid, and encodes and decodes back to the same value.
// The seeds (a valid record and the classic breakages) run in `make test`;
// `make fuzz` runs each target for FUZZTIME (CI: 60 s).

func fuzzDecoder[T events.Validator](f *testing.F, valid T, decode func([]byte) (T, error)) {
	good, err := events.Encode(valid)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	s := string(good)
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"a":1}`, s + " ", s + "x", s + s,
		strings.Replace(s, `{`, `{"x":1,`, 1),
		strings.Replace(s, `":`, `":null,"`+strings.SplitN(s[2:], `"`, 2)[0]+`":`, 1),
		strings.ToUpper(s), s[:len(s)/2],
		strings.ReplaceAll(s, `"`, `'`),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decode(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: an error without a message", data)
			}
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("%q decoded, but is invalid: %v", data, err)
		}
		again, err := events.Encode(v)
		if err != nil {
			t.Fatalf("%q decoded to %+v, which does not encode: %v", data, v, err)
		}
		back, err := decode(again)
		if err != nil || !reflect.DeepEqual(jsonValue(t, back), jsonValue(t, v)) {
			t.Fatalf("%q: round trip %s → %+v (%v), want %+v", data, again, back, err, v)
		}
	})
}

// jsonValue compares through JSON: time.Time keeps a monotonic reading and
// location that DeepEqual would see.
func jsonValue(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func FuzzDecodeRestockEvent(f *testing.F) {
	fuzzDecoder(f, validRestock(), events.DecodeRestockEvent)
}

func FuzzDecodeStockLevel(f *testing.F) { fuzzDecoder(f, validStock(), events.DecodeStockLevel) }

func FuzzDecodeWishlistChange(f *testing.F) {
	fuzzDecoder(f, validWishlist(), events.DecodeWishlistChange)
}

func FuzzDecodeWishlistPreferences(f *testing.F) {
	fuzzDecoder(f, validPreferences(), events.DecodeWishlistPreferences)
}

func FuzzDecodeNotification(f *testing.F) {
	fuzzDecoder(f, validNotification(), events.DecodeNotification)
}

func FuzzDecodeClickEvent(f *testing.F) { fuzzDecoder(f, validClick(), events.DecodeClickEvent) }
func FuzzDecodeOrder(f *testing.F)      { fuzzDecoder(f, validOrder(), events.DecodeOrder) }

func FuzzDecodeDeliveryStatus(f *testing.F) {
	fuzzDecoder(f, validDeliveryStatus(), events.DecodeDeliveryStatus)
}
