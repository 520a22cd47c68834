package events_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"backinstock/topics/events"
)

// replaceOnce edits an encoded event, failing the test when old is absent
// (the case would otherwise test the valid record).
func replaceOnce(t *testing.T, doc, old, new string) string {
	t.Helper()
	if !strings.Contains(doc, old) {
		t.Fatalf("%q not in %s", old, doc)
	}
	return strings.Replace(doc, old, new, 1)
}

// TestDecodeRefusesDuplicateAndWrongCaseKeys: encoding/json keeps the last
// of duplicate keys and matches keys in any case, so either would let a
// record say something other than what its consumers validate.
func TestDecodeRefusesDuplicateAndWrongCaseKeys(t *testing.T) {
	enc := func(v events.Validator) string {
		data, err := events.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	restock, stock, wish, prefs, notif := enc(validRestock()), enc(validStock()), enc(validWishlist()), enc(validPreferences()), enc(validNotification())
	cases := []struct {
		schema, name, doc, want string
	}{
		{events.SchemaRestockEvent, "duplicate quantity", replaceOnce(t, restock, `"quantity":5`, `"quantity":0,"quantity":5`), "quantity: duplicate key"},
		{events.SchemaRestockEvent, "duplicate nested title", replaceOnce(t, restock, `"title":"`, `"title":"x","title":"`), "product.title: duplicate key"},
		{events.SchemaRestockEvent, "duplicate by escape", replaceOnce(t, restock, `"sku":"SKU-1"`, `"sku":"SKU-1","\u0073ku":"SKU-2"`), "sku: duplicate key"},
		{events.SchemaRestockEvent, "wrong-case region", replaceOnce(t, restock, `"region":`, `"Region":`), `Region: unknown field (did you mean "region"?)`},
		{events.SchemaRestockEvent, "wrong-case nested mode", replaceOnce(t, restock, `"mode":`, `"MODE":`), `delivery.MODE: unknown field (did you mean "delivery.mode"?)`},
		{events.SchemaStockLevel, "duplicate quantity", replaceOnce(t, stock, `"quantity":0`, `"quantity":0,"quantity":7`), "quantity: duplicate key"},
		{events.SchemaStockLevel, "wrong-case sku", replaceOnce(t, stock, `"sku":`, `"Sku":`), `Sku: unknown field (did you mean "sku"?)`},
		{events.SchemaWishlistChange, "duplicate user_id", replaceOnce(t, wish, `"user_id":"user_42"`, `"user_id":"user_42","user_id":"user_43"`), "user_id: duplicate key"},
		{events.SchemaWishlistChange, "duplicate op", replaceOnce(t, wish, `"op":"add"`, `"op":"add","op":"remove"`), "op: duplicate key"},
		{events.SchemaWishlistChange, "duplicate contact", replaceOnce(t, wish, `"email":"a@example.com"`, `"email":"a@example.com","email":"b@example.com"`), "contacts.email: duplicate key"},
		{events.SchemaWishlistChange, "wrong-case op", replaceOnce(t, wish, `"op":`, `"Op":`), `Op: unknown field (did you mean "op"?)`},
		{events.SchemaWishlistPreferences, "duplicate unsubscribed", replaceOnce(t, prefs, `"unsubscribed":true`, `"unsubscribed":true,"unsubscribed":false`), "preferences.unsubscribed: duplicate key"},
		{events.SchemaWishlistPreferences, "duplicate quiet start", replaceOnce(t, prefs, `"start":"21:30"`, `"start":"21:30","start":"23:00"`), "preferences.quiet_hours.start: duplicate key"},
		{events.SchemaWishlistPreferences, "wrong-case user_id", replaceOnce(t, prefs, `"user_id":`, `"USER_ID":`), `USER_ID: unknown field (did you mean "user_id"?)`},
		{events.SchemaNotification, "duplicate user_id", replaceOnce(t, notif, `"user_id":"user_42"`, `"user_id":"user_42","user_id":"other"`), "user_id: duplicate key"},
		{events.SchemaNotification, "duplicate url", replaceOnce(t, notif, `"url":"`, `"url":"https://evil.example/","url":"`), "url: duplicate key"},
		{events.SchemaNotification, "duplicate quiet end", replaceOnce(t, notif, `"end":"08:00"`, `"end":"08:00","end":"09:00"`), "quiet_hours.end: duplicate key"},
		{events.SchemaNotification, "wrong-case url", replaceOnce(t, notif, `"url":`, `"URL":`), `URL: unknown field (did you mean "url"?)`},
	}
	for _, tc := range cases {
		t.Run(tc.schema+"/"+tc.name, func(t *testing.T) {
			_, err := decode(tc.schema, []byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("decode %s\n= %v, want an error with %q", tc.doc, err, tc.want)
			}
		})
	}
}

type embeddedPart struct {
	Inner string `json:"inner"`
	Outer string `json:"outer"`
}

type withEmbedded struct {
	embeddedPart
	Outer string `json:"outer"`
}

type keysDoc struct {
	Name   string            `json:"name"`
	At     time.Time         `json:"at"`
	Items  []embeddedPart    `json:"items"`
	Labels map[string]string `json:"labels"`
	Free   any               `json:"free"`
	Emb    withEmbedded      `json:"emb"`
}

func TestCheckKeys(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"exact keys", `{"name":"a","at":"2025-01-01T00:00:00Z","items":[{"inner":"x"}],"labels":{"a":"1","A":"2"},"free":{"x":{"X":1}},"emb":{"inner":"i","outer":"o"}}`, nil},
		{"duplicate top-level", `{"name":"a","name":"b"}`, []string{`duplicate key "name"`}},
		{"duplicate by escape", `{"name":"a","\u006eame":"b"}`, []string{`duplicate key "name"`}},
		{"wrong case", `{"Name":"a"}`, []string{`unknown key "Name" (did you mean "name"?)`}},
		{"unknown", `{"nme":"a"}`, []string{`unknown key "nme"`}},
		{"unknown then repeated", `{"nme":"a","nme":"b"}`, []string{`unknown key "nme"`, `duplicate key "nme"`}},
		{"in an array element", `{"items":[{"inner":"x"},{"Inner":"y"}]}`, []string{`unknown key "items[1].Inner" (did you mean "items[1].inner"?)`}},
		{"map keys any case, no duplicates", `{"labels":{"a":"1","a":"2"}}`, []string{`duplicate key "labels.a"`}},
		{"inside an interface", `{"free":[{"k":1,"k":2}]}`, []string{`duplicate key "free[0].k"`}},
		{"inside an unknown key", `{"x":{"k":1,"k":2}}`, []string{`unknown key "x"`, `duplicate key "x.k"`}},
		{"promoted field", `{"emb":{"inner":"i","Inner":"j"}}`, []string{`unknown key "emb.Inner" (did you mean "emb.inner"?)`}},
		{"not an object", `[1,2]`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range events.CheckKeys([]byte(tt.doc), reflect.TypeFor[*keysDoc]()) {
				got = append(got, e.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("CheckKeys(%s) = %q, want %q", tt.doc, got, tt.want)
			}
		})
	}
}
