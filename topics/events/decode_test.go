package events_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"backinstock/topics/events"
)

func decode(schema string, data []byte) (any, error) {
	switch schema {
	case events.SchemaRestockEvent:
		return events.DecodeRestockEvent(data)
	case events.SchemaStockLevel:
		return events.DecodeStockLevel(data)
	case events.SchemaWishlistChange:
		return events.DecodeWishlistChange(data)
	case events.SchemaNotification:
		return events.DecodeNotification(data)
	case events.SchemaWishlistPreferences:
		return events.DecodeWishlistPreferences(data)
	case events.SchemaDeliveryStatus:
		return events.DecodeDeliveryStatus(data)
	case events.SchemaWebhookEvent:
		return events.DecodeWebhookEvent(data)
	case events.SchemaClickEvent:
		return events.DecodeClickEvent(data)
	case events.SchemaOrder:
		return events.DecodeOrder(data)
	}
	panic("unknown schema " + schema)
}

func TestDecode(t *testing.T) {
	for _, tc := range eventCases(t) {
		t.Run(tc.schema+"/"+tc.name, func(t *testing.T) {
			_, err := decode(tc.schema, []byte(tc.doc))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("decode %s: %v", tc.doc, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("decode accepted %s", tc.doc)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\ndoes not contain %q", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), tc.schema+": ") {
				t.Errorf("error %q does not start with the type name", err)
			}
			var fe *events.FieldError
			if !errors.As(err, &fe) {
				t.Errorf("error %T does not hold a *FieldError", err)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	values := []struct {
		schema string
		v      interface{ Validate() error }
	}{
		{events.SchemaRestockEvent, validRestock()},
		{events.SchemaStockLevel, validStock()},
		{events.SchemaWishlistChange, validWishlist()},
		{events.SchemaNotification, validNotification()},
		{events.SchemaWishlistPreferences, validPreferences()},
		{events.SchemaWishlistPreferences, events.WishlistPreferences{UserID: "u1", At: at}},
		{events.SchemaDeliveryStatus, validDeliveryStatus()},
		{events.SchemaClickEvent, validClick()},
		{events.SchemaOrder, validOrder()},
	}
	for _, tc := range values {
		data, err := events.Encode(tc.v)
		if err != nil {
			t.Fatalf("encode %s: %v", tc.schema, err)
		}
		got, err := decode(tc.schema, data)
		if err != nil {
			t.Fatalf("decode what Encode wrote (%s): %v", data, err)
		}
		if !reflect.DeepEqual(got, tc.v) {
			t.Errorf("%s round trip:\n got %+v\nwant %+v", tc.schema, got, tc.v)
		}
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	r := validRestock()
	r.SKU, r.Quantity = "bad sku", -1
	_, err := events.Encode(r)
	if err == nil {
		t.Fatal("Encode accepted an invalid restock")
	}
	// Every problem is listed, not just the first.
	for _, w := range []string{"sku: must match", "quantity: must be between"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	var ve *events.ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 2 || ve.Problems[0].Field != "sku" || ve.Problems[1].Field != "quantity" {
		t.Errorf("ValidationError = %+v", ve)
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	n := events.Notification{Channel: "fax"}
	err := n.Validate()
	for _, field := range []string{"notification_id", "restock_event_id", "user_id", "sku", "region", "channel", "episode", "title", "body", "url", "created_at"} {
		if err == nil || !strings.Contains(err.Error(), field+": ") {
			t.Errorf("Validate of an empty notification: %v, want a problem with %s", err, field)
		}
	}
}
