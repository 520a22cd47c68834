package events

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleNotification() Notification {
	return Notification{
		NotificationID: NotificationID("u1", "SKU-1", "us-east-1", 2, "sms"),
		RestockEventID: RestockEventID("SKU-1", "us-east-1", 2),
		UserID:         "u1", SKU: "SKU-1", Region: "us-east-1", Channel: "sms", Episode: 2,
		Title: "t", Body: "b \"quoted\" \u00e9\n", URL: "https://shop.example/x", CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 6, time.UTC),
		TimeZone: "UTC", QuietHours: &QuietHours{Start: "22:00", End: "06:00"}, Contact: "+14155550100",
	}
}

func TestQuickShapeTakesWellFormedRecords(t *testing.T) {
	for _, v := range []Validator{
		sampleNotification(),
		WishlistChange{UserID: "u", SKU: "s", Region: "eu-west-1", Channels: []string{"app"}, Op: OpAdd, At: time.Now(), Contacts: map[string]string{"app": "tok"}},
		RestockEvent{EventID: RestockEventID("s", "eu-west-1", 1), SKU: "s", Region: "eu-west-1", Quantity: 1, Episode: 1, OccurredAt: time.Now(), Product: &Product{Title: "x"}},
		StockLevel{SKU: "s", Region: "eu-west-1", At: time.Now()},
		WishlistPreferences{UserID: "u", At: time.Now(), Preferences: &Preferences{Channels: []string{"app"}, TimeZone: "UTC",
			QuietHours: &QuietHours{Start: "22:00", End: "06:00"}, Contacts: map[string]string{"sms": "+14155550100"}, Unsubscribed: true, OptOut: []string{"web"}}},
		WishlistPreferences{UserID: "u", At: time.Now()},
		DeliveryStatus{EventID: DeliveryEventID("n1", 1, StatusFailed), NotificationID: "n1", UserID: "u", SKU: "s", Region: "eu-west-1",
			Channel: "email", Status: StatusFailed, Provider: "smtp", Attempt: 1, Reason: "550 no such user", At: time.Now()},
	} {
		data, err := Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		if !quickShape(data, reflect.TypeOf(v)) {
			t.Errorf("quickShape refused %s: the fast path is never taken", data)
		}
	}
}

// FuzzDecodePathsAgree checks that the fast path never accepts what the slow
// path, which explains every problem, would reject, and decodes the same.
func FuzzDecodePathsAgree(f *testing.F) {
	good, _ := Encode(sampleNotification())
	f.Add(good)
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"user_id":null}`, `{"episode":1.0}`, `{"episode":1e2}`,
		`{"notification_id":"a","NOTIFICATION_ID":"b"}`, `{"contact":""}`, `{"quiet_hours":{}}`,
		string(good) + " ", " " + string(good), string(good) + "x", `{"title":"\u0000"}`,
		strings.Replace(string(good), `"user_id":`, `"user_id":"x","user_id":`, 1),
		strings.Replace(string(good), `"user_id":`, `"user_id":"x","\u0075ser_id":`, 1),
		strings.Replace(string(good), `"url":`, `"URL":`, 1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var fast, slow Notification
		errFast := decodeStrict(SchemaNotification, data, &fast)
		errSlow := decodeSlow(SchemaNotification, data, &slow)
		if (errFast == nil) != (errSlow == nil) {
			t.Fatalf("paths disagree on %q: fast %v, slow %v", data, errFast, errSlow)
		}
		if errFast == nil && !reflect.DeepEqual(fast, slow) {
			t.Fatalf("paths decode %q differently:\n%+v\n%+v", data, fast, slow)
		}
	})
}

// FuzzQuickNotificationAgrees checks that DecodeNotification (which tries
// quickNotification first) decodes and rejects exactly like the general
// strict decoder, error messages included.
func FuzzQuickNotificationAgrees(f *testing.F) {
	good, _ := Encode(sampleNotification())
	plain := sampleNotification()
	plain.Body, plain.TimeZone, plain.QuietHours, plain.Contact = "plain", "", nil, ""
	plainData, _ := Encode(plain)
	for _, d := range [][]byte{good, plainData} {
		f.Add(d)
	}
	for _, s := range []string{
		`{}`, `null`, `[]`, `{"user_id":null}`, `{"episode":1.0}`, `{"episode":1e2}`, `{"episode":01}`, `{"episode":-0}`,
		`{"notification_id":"a","NOTIFICATION_ID":"b"}`, `{"contact":""}`, `{"quiet_hours":{}}`, `{"title":"\u00e9"}`,
		string(good) + " ", " " + string(good), string(good) + "x", `{"title":"\u0000"}`, "{\"title\":\"\xff\"}",
		strings.Replace(string(plainData), `"sku":`, `"sku":"X","sku":`, 1),
		strings.Replace(string(plainData), `"episode":2`, `"episode":9223372036854775808`, 1),
		strings.Replace(string(plainData), `"url":`, `"extra":1,"url":`, 1),
		strings.Replace(string(good), `"start":"22:00"`, `"start":"22:00","start":"23:00"`, 1),
		strings.Replace(string(good), `"start":"22:00"`, `"start":null`, 1),
		strings.Replace(string(plainData), `"created_at":"`, `"created_at":"x`, 1),
		strings.Replace(string(plainData), `"user_id":`, `"user_id":"pn8other","user_id":`, 1),
		strings.Replace(string(plainData), `"url":`, `"url":"https://evil.example/","url":`, 1),
		strings.Replace(string(plainData), `"url":`, `"url":"https://evil.example/","\u0075rl":`, 1),
		strings.Replace(string(plainData), `"url":`, `"Url":`, 1),
		strings.Replace(string(good), `"end":"06:00"`, `"end":"06:00","end":"07:00"`, 1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, errGot := DecodeNotification(data)
		var want Notification
		errWant := decodeStrict(SchemaNotification, data, &want)
		if (errGot == nil) != (errWant == nil) || (errGot != nil && errGot.Error() != errWant.Error()) {
			t.Fatalf("decoders disagree on %q: quick %v, general %v", data, errGot, errWant)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("decoders decode %q differently:\n%+v\n%+v", data, got, want)
		}
	})
}

func TestQuickNotificationTakesWellFormedRecords(t *testing.T) {
	n := sampleNotification()
	n.Locale = "en-US"
	data, err := Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	var got Notification
	if !quickNotification(data, &got) {
		t.Fatalf("quickNotification refused %s: the fast path is never taken", data)
	}
	if !reflect.DeepEqual(got, n) {
		t.Fatalf("quickNotification decoded\n%+v\nwant\n%+v", got, n)
	}
}
