package changelog

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"backinstock/services/wishlist/internal/wishes"
	"backinstock/topics/events"
)

func valueOf(t *testing.T, m *sarama.ProducerMessage) []byte {
	t.Helper()
	if m.Value == nil {
		return nil
	}
	b, err := m.Value.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func header(m *sarama.ProducerMessage, k string) string {
	for _, h := range m.Headers {
		if string(h.Key) == k {
			return string(h.Value)
		}
	}
	return ""
}

// TestPrefsMessageIsTheContract writes preferences records and reads them
// back: key, schema header and value follow events.WishlistPreferences, the
// bytes are what the service's former local struct wrote (so records already
// on the topic and new ones are alike), and Decode restores the preferences.
func TestPrefsMessageIsTheContract(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 7, 8000000, time.FixedZone("x", 3600))
	// The former local record type, kept here as the reference encoding.
	type formerRecord struct {
		UserID      string              `json:"user_id"`
		Preferences *wishes.Preferences `json:"preferences,omitempty"`
		At          time.Time           `json:"at"`
	}
	tests := []struct {
		name string
		p    *wishes.Preferences
	}{
		{"cleared", nil},
		{"empty", &wishes.Preferences{}},
		{"full", &wishes.Preferences{Channels: []string{"app", "email"}, Locale: "de-DE", TimeZone: "Europe/Berlin",
			QuietHours: &events.QuietHours{Start: "22:00", End: "07:00"}, Contacts: map[string]string{"email": "a@example.com", "sms": "+4915112345678"},
			Unsubscribed: true, OptOut: []string{"sms"}}},
		{"opt-out only", &wishes.Preferences{OptOut: []string{"email", "sms"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := PrefsMessage("wishlist.changes.v1", "user-1", tt.p, at)
			if err != nil {
				t.Fatal(err)
			}
			k, _ := m.Key.Encode()
			if string(k) != "user-1|~prefs" || string(k) != events.PreferencesKey("user-1") {
				t.Fatalf("key = %q", k)
			}
			if got := header(m, events.HeaderSchema); got != "WishlistPreferences/1" {
				t.Fatalf("schema header = %q", got)
			}
			data := valueOf(t, m)
			former, _ := json.Marshal(formerRecord{UserID: "user-1", Preferences: tt.p, At: at.UTC()})
			if string(data) != string(former) {
				t.Fatalf("value changed:\n now  %s\n was  %s", data, former)
			}
			if _, err := events.DecodeWishlistPreferences(data); err != nil {
				t.Fatalf("the contract rejects what the service writes: %v", err)
			}
			rec, err := Decode(k, data)
			if err != nil {
				t.Fatal(err)
			}
			if rec.Kind != KindPrefs || rec.UserID != "user-1" || !reflect.DeepEqual(rec.Prefs, tt.p) || rec.Key() != string(k) {
				t.Fatalf("Decode = %+v, want the preferences %+v", rec, tt.p)
			}
		})
	}
	if _, err := PrefsMessage("wishlist.changes.v1", "user 1", nil, at); err == nil {
		t.Fatal("PrefsMessage wrote a record with an invalid user id")
	}
}

func TestDecode(t *testing.T) {
	at := "2026-01-02T03:04:05Z"
	tests := []struct {
		name       string
		key, value string
		null       bool // tombstone
		want       Kind
		err        string // "" when the record decodes
	}{
		{name: "put", key: "u1|s1", value: `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["app"],"op":"add","at":"` + at + `"}`, want: KindPut},
		{name: "remove tombstone", key: "u1|s1", null: true, want: KindRemove},
		{name: "legacy remove", key: "u1|s1", value: `{"user_id":"u1","sku":"s1","region":"us-east-1","op":"remove","at":"` + at + `"}`, want: KindRemove},
		{name: "change of another key", key: "u1|s2", value: `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["app"],"op":"add","at":"` + at + `"}`, err: "does not match"},
		{name: "change with unknown field", key: "u1|s1", value: `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["app"],"op":"add","at":"` + at + `","x":1}`, err: "x: unknown field"},
		{name: "bad key", key: "u1", value: `{}`, err: "not <user>|<sku>"},
		{name: "prefs", key: "u1|~prefs", value: `{"user_id":"u1","preferences":{"unsubscribed":true},"at":"` + at + `"}`, want: KindPrefs},
		{name: "prefs cleared", key: "u1|~prefs", value: `{"user_id":"u1","at":"` + at + `"}`, want: KindPrefs},
		{name: "prefs tombstone", key: "u1|~prefs", null: true, want: KindPrefs},
		{name: "prefs with bad user key", key: "u 1|~prefs", null: true, err: "preferences key"},
		{name: "prefs of another user", key: "u1|~prefs", value: `{"user_id":"u2","at":"` + at + `"}`, err: "does not match"},
		{name: "prefs unknown field", key: "u1|~prefs", value: `{"user_id":"u1","preferences":{"theme":"dark"},"at":"` + at + `"}`, err: "preferences.theme: unknown field"},
		{name: "prefs null", key: "u1|~prefs", value: `{"user_id":"u1","preferences":null,"at":"` + at + `"}`, err: "preferences: must not be null"},
		{name: "prefs bad locale", key: "u1|~prefs", value: `{"user_id":"u1","preferences":{"locale":"english"},"at":"` + at + `"}`, err: "preferences.locale: must be a BCP 47"},
		{name: "prefs duplicate opt-out", key: "u1|~prefs", value: `{"user_id":"u1","preferences":{"opt_out":["sms","sms"]},"at":"` + at + `"}`, err: "preferences.opt_out[1]: duplicate"},
		{name: "prefs without at", key: "u1|~prefs", value: `{"user_id":"u1"}`, err: "at: required"},
		{name: "prefs not JSON", key: "u1|~prefs", value: `{"user_id":`, err: "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var v []byte
			if !tt.null {
				v = []byte(tt.value)
			}
			rec, err := Decode([]byte(tt.key), v)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Decode = %+v, %v; want an error containing %q", rec, err, tt.err)
				}
				return
			}
			if err != nil || rec.Kind != tt.want || rec.Key() != tt.key {
				t.Fatalf("Decode = %+v, %v; want kind %d for key %s", rec, err, tt.want, tt.key)
			}
		})
	}
}
