package wishes

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"backinstock/topics/events"
)

var regions = []string{"us-east-1", "eu-west-1", "ap-south-1"}

func TestReach(t *testing.T) {
	tests := []struct {
		name  string
		chans []string
		prefs *Preferences
		want  []string
	}{
		{"no preferences", []string{"app", "email"}, nil, []string{"app", "email"}},
		{"no opt-outs", []string{"app", "email"}, &Preferences{Locale: "en-US"}, []string{"app", "email"}},
		{"opted out of email", []string{"app", "email"}, &Preferences{OptOut: []string{"email"}}, []string{"app"}},
		{"opted out of all its channels", []string{"sms"}, &Preferences{OptOut: []string{"sms", "web"}}, []string{}},
		{"unsubscribed", []string{"app", "web"}, &Preferences{Unsubscribed: true}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Reach(tt.chans, tt.prefs)
			if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
				t.Fatalf("Reach = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResolveAndWaves(t *testing.T) {
	def := Policy{Mode: events.DeliveryAll, PerUnit: 2, MinStock: 1, Interval: time.Second}
	tests := []struct {
		name     string
		delivery *events.Delivery
		want     Policy
	}{
		{"no override", nil, def},
		{"mode only keeps numbers", &events.Delivery{Mode: events.DeliveryStockAware}, Policy{Mode: events.DeliveryStockAware, PerUnit: 2, MinStock: 1, Interval: time.Second}},
		{"all fields", &events.Delivery{Mode: events.DeliveryStockAware, PerUnit: 5, MinStock: 3, IntervalMS: 250},
			Policy{Mode: events.DeliveryStockAware, PerUnit: 5, MinStock: 3, Interval: 250 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Resolve(def, tt.delivery); got != tt.want {
				t.Fatalf("Resolve = %+v, want %+v", got, tt.want)
			}
		})
	}

	p := Policy{Mode: events.DeliveryStockAware, PerUnit: 2, MinStock: 2}
	waves := []struct {
		name   string
		level  Level
		size   int64
		goesOn bool
	}{
		{"in stock", Level{Quantity: 5, Episode: 3, Known: true}, 10, true},
		{"at the minimum", Level{Quantity: 2, Episode: 3, Known: true}, 4, true},
		{"under the minimum", Level{Quantity: 1, Episode: 3, Known: true}, 0, false},
		{"sold out", Level{Quantity: 0, Episode: 3, Known: true}, 0, false},
		{"unknown stock", Level{}, 0, false},
		{"a later episode began", Level{Quantity: 50, Episode: 4, Known: true}, 0, false},
	}
	for _, tt := range waves {
		t.Run(tt.name, func(t *testing.T) {
			size, ok := NextWave(p, 3, tt.level)
			if size != tt.size || ok != tt.goesOn {
				t.Fatalf("NextWave = %d, %v; want %d, %v", size, ok, tt.size, tt.goesOn)
			}
		})
	}
	if got := WaveSize(2, 5); got != 10 {
		t.Fatalf("WaveSize(2, 5) = %d, want 10", got)
	}
}

func TestItemRoundTrip(t *testing.T) {
	e := Entry{UserID: "u-1", SKU: "sku_9", Region: "eu-west-1", Channels: []string{"app", "sms"}, Since: time.UnixMilli(1732480000123)}
	got, err := DecodeItem("u-1", "sku_9", EncodeItem(e))
	if err != nil || !reflect.DeepEqual(got, e) {
		t.Fatalf("DecodeItem = %+v, %v; want %+v", got, err, e)
	}
	for _, bad := range []string{"", "x eu-west-1 app", "12", "12 eu-west-1", "12 eu-west-1 "} {
		if _, err := DecodeItem("u", "s", bad); err == nil {
			t.Errorf("DecodeItem(%q) accepted", bad)
		}
	}
}

func TestCheckEntry(t *testing.T) {
	ok := Entry{UserID: "u1", SKU: "s1", Region: "us-east-1", Channels: []string{"app"}}
	tests := []struct {
		name   string
		mutate func(e *Entry)
		field  string
	}{
		{"dot in user", func(e *Entry) { e.UserID = "u.1" }, "user_id"},
		{"star in sku", func(e *Entry) { e.SKU = "s*" }, "sku"},
		{"greater-than in sku", func(e *Entry) { e.SKU = "s>" }, "sku"},
		{"space in user", func(e *Entry) { e.UserID = "u 1" }, "user_id"},
		{"pipe in user", func(e *Entry) { e.UserID = "u|1" }, "user_id"},
		{"unknown region", func(e *Entry) { e.Region = "mars-1" }, "region"},
		{"malformed region", func(e *Entry) { e.Region = "US_EAST" }, "region"},
		{"bad channel", func(e *Entry) { e.Channels = []string{"pigeon"} }, "channels[0]"},
		{"duplicate channel", func(e *Entry) { e.Channels = []string{"app", "app"} }, "channels[1]"},
		{"no channel", func(e *Entry) { e.Channels = nil }, "channels"},
	}
	if err := CheckEntry(ok, regions); err != nil {
		t.Fatalf("valid entry rejected: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := ok
			tt.mutate(&e)
			err := CheckEntry(e, regions)
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("CheckEntry = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}

func TestCheckPreferences(t *testing.T) {
	tests := []struct {
		name string
		p    Preferences
		ok   bool
	}{
		{"full", Preferences{Channels: []string{"app"}, Locale: "de-DE", TimeZone: "Europe/Berlin",
			QuietHours: &events.QuietHours{Start: "22:00", End: "07:00"}, Contacts: map[string]string{"email": "a@example.com", "sms": "+14155550100"}, OptOut: []string{"sms"}}, true},
		{"empty", Preferences{}, true},
		{"bad locale", Preferences{Locale: "english please"}, false},
		{"quiet hours without time zone", Preferences{QuietHours: &events.QuietHours{Start: "22:00", End: "07:00"}}, false},
		{"bad quiet hour", Preferences{TimeZone: "UTC", QuietHours: &events.QuietHours{Start: "25:00", End: "07:00"}}, false},
		{"bad email", Preferences{Contacts: map[string]string{"email": "nope"}}, false},
		{"unknown contact channel", Preferences{Contacts: map[string]string{"fax": "1"}}, false},
		{"bad opt-out channel", Preferences{OptOut: []string{"fax"}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := CheckPreferences("u1", tt.p); (err == nil) != tt.ok {
				t.Fatalf("CheckPreferences = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestAppendNotificationMatchesContract(t *testing.T) {
	ev := events.RestockEvent{EventID: events.RestockEventID("sku-1", "us-east-1", 3), SKU: "sku-1", Region: "us-east-1", Episode: 3, Quantity: 5,
		Product: &events.Product{Title: "Kettle \"Pro\" <2L> \\ é ✓", URL: "https://shop.example.com/k?a=1&b=2", Price: "19.99"}}
	m := MessageFor(ev, "https://x.example/{sku}")
	at := time.Date(2026, 11, 24, 20, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name  string
		prefs *Preferences
	}{
		{"no preferences", nil},
		{"all preferences", &Preferences{Locale: "fr-FR", TimeZone: "Europe/Paris", QuietHours: &events.QuietHours{Start: "22:00", End: "07:00"},
			Contacts: map[string]string{"email": "jo@example.com"}}},
		{"devices", &Preferences{Devices: testDevices}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := m.Notification("user-7", "email", tt.prefs, at)
			if tt.prefs != nil && len(tt.prefs.Devices) > 0 {
				n = m.Notification("user-7", "web", tt.prefs, at)
				if len(n.Devices) != 2 {
					t.Fatalf("web notification devices = %+v, want the two webpush ones", n.Devices)
				}
			}
			data := AppendNotification(nil, &n)
			got, err := events.DecodeNotification(data)
			if err != nil {
				t.Fatalf("DecodeNotification(%s): %v", data, err)
			}
			if !reflect.DeepEqual(got, n) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, n)
			}
			var viaStd, viaOurs map[string]any
			std, _ := json.Marshal(n)
			_ = json.Unmarshal(std, &viaStd)
			_ = json.Unmarshal(data, &viaOurs)
			if !reflect.DeepEqual(viaStd, viaOurs) {
				t.Fatalf("differs from encoding/json:\n ours %s\n std  %s", data, std)
			}
		})
	}
	if got := appendString(nil, "a\x01\u2028\xff"); string(got) != `"a\u0001\u2028\ufffd"` {
		t.Fatalf("appendString escapes = %s", got)
	}
}

func TestMessageFallbacks(t *testing.T) {
	ev := events.RestockEvent{EventID: "e", SKU: "sku-1", Region: "us-east-1", Episode: 1}
	m := MessageFor(ev, "https://shop.example.com/p/{sku}")
	if m.Title != "sku-1" || m.URL != "https://shop.example.com/p/sku-1" || m.Body != "sku-1 is back in stock." {
		t.Fatalf("MessageFor without product = %+v", m)
	}
}

func TestParseImportLine(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	tests := []struct {
		name string
		line string
		ok   bool
	}{
		{"minimal", `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["email","app"]}`, true},
		{"with time", `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["app"],"at":"2026-01-02T03:04:05Z"}`, true},
		{"unknown field", `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["app"],"x":1}`, false},
		{"duplicate key", `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["app"],"user_id":"u2"}`, false},
		{"duplicate nested in an unknown key", `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["app"],"x":{"a":1,"a":2}}`, false},
		{"key in another case", `{"User_id":"u1","sku":"s1","region":"us-east-1","channels":["app"]}`, false},
		{"malformed", `{"user_id":`, false},
		{"two values", `{"user_id":"u1","sku":"s1","region":"us-east-1","channels":["app"]} {}`, false},
		{"bad id", `{"user_id":"u 1","sku":"s1","region":"us-east-1","channels":["app"]}`, false},
		{"unknown region", `{"user_id":"u1","sku":"s1","region":"eu-north-9","channels":["app"]}`, false},
		{"no channels", `{"user_id":"u1","sku":"s1","region":"us-east-1"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseImportLine([]byte(tt.line), regions, now)
			if (err == nil) != tt.ok {
				t.Fatalf("ParseImportLine = %+v, %v; want ok=%v", e, err, tt.ok)
			}
			if tt.ok && tt.name == "minimal" && (!reflect.DeepEqual(e.Channels, []string{"app", "email"}) || !e.Since.Equal(now)) {
				t.Fatalf("entry = %+v", e)
			}
		})
	}
}

func TestEncoderMatchesNotification(t *testing.T) {
	ev := events.RestockEvent{EventID: events.RestockEventID("sku-1", "eu-west-1", 2), SKU: "sku-1", Region: "eu-west-1", Episode: 2, Quantity: 5,
		Product: &events.Product{Title: "Lamp \"Arc\"", URL: "https://shop.example.com/lamp"}}
	m := MessageFor(ev, "https://x.example/{sku}")
	at := time.Date(2026, 11, 24, 20, 0, 0, 5, time.UTC)
	enc := NewEncoder(m, at)
	prefs := []*Preferences{nil, {Locale: "en-US"}, {Locale: "de-DE", TimeZone: "Europe/Berlin", QuietHours: &events.QuietHours{Start: "21:30", End: "06:00"},
		Contacts: map[string]string{"sms": "+4915112345678", "email": "x@example.com"}}, {Devices: testDevices},
		{Locale: "en-GB", Devices: testDevices[:1]}}
	for i, p := range prefs {
		for _, ch := range []string{"sms", "app", "web", "email"} {
			data := enc.Append(nil, &m, "user-9", ch, p)
			got, err := events.DecodeNotification(data)
			if err != nil {
				t.Fatalf("prefs %d %s: DecodeNotification(%s): %v", i, ch, data, err)
			}
			if want := m.Notification("user-9", ch, p, at); !reflect.DeepEqual(got, want) || got.NotificationID != events.NotificationID("user-9", "sku-1", "eu-west-1", 2, ch) {
				t.Fatalf("prefs %d %s:\n got %+v\nwant %+v", i, ch, got, want)
			}
		}
	}
}

// testDevices are one fcm and two webpush devices, sorted by id.
var testDevices = []events.Device{
	{ID: "laptop", Kind: events.DeviceWebPush, Endpoint: "https://push.example/send/a\"b", P256dh: testPushKey, Auth: testPushAuth},
	{ID: "phone", Kind: events.DeviceFCM, Token: "fcm:APA91b-1"},
	{ID: "tablet", Kind: events.DeviceWebPush, Endpoint: "https://push.example/send/c", P256dh: testPushKey + "=", Auth: testPushAuth},
}

const (
	testPushKey  = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
	testPushAuth = "tBHItJI5svbpez7KI4CCXg"
)

func TestNotificationsCarryTheDevicesOfTheirChannel(t *testing.T) {
	m := Message{RestockEventID: events.RestockEventID("s", "us-east-1", 1), SKU: "s", Region: "us-east-1", Episode: 1, Title: "T", Body: "B", URL: "https://x.example/s"}
	p := &Preferences{Devices: testDevices}
	tests := []struct {
		channel string
		want    []string
	}{
		{"app", []string{"phone"}},
		{"web", []string{"laptop", "tablet"}},
		{"email", nil},
		{"sms", nil},
	}
	for _, tt := range tests {
		var got []string
		for _, d := range m.Notification("u", tt.channel, p, time.Now()).Devices {
			got = append(got, d.ID)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: devices %v, want %v", tt.channel, got, tt.want)
		}
	}
	if n := m.Notification("u", "app", &Preferences{Devices: testDevices[:1]}, time.Now()); n.Devices != nil {
		t.Errorf("app with only a webpush device: devices %v, want none", n.Devices)
	}
}

func TestWithDevice(t *testing.T) {
	fcm := func(id, tok string) events.Device { return events.Device{ID: id, Kind: events.DeviceFCM, Token: tok} }
	full := make([]events.Device, events.MaxDevices)
	for i := range full {
		full[i] = fcm("d"+string(rune('a'+i)), "t"+string(rune('a'+i)))
	}
	ids := func(ds []events.Device) string {
		var s []string
		for _, d := range ds {
			s = append(s, d.ID+"="+d.Handle())
		}
		return strings.Join(s, " ")
	}
	tests := []struct {
		name    string
		have    []events.Device
		put     events.Device
		want    string
		created bool
		err     error
	}{
		{"first", nil, fcm("phone", "t1"), "phone=t1", true, nil},
		{"second, sorted", []events.Device{fcm("phone", "t1")}, fcm("a-tab", "t2"), "a-tab=t2 phone=t1", true, nil},
		{"same id, new token", []events.Device{fcm("phone", "t1")}, fcm("phone", "t2"), "phone=t2", false, nil},
		{"same token, new id: moves", []events.Device{fcm("phone", "t1"), fcm("tab", "t2")}, fcm("phone-2", "t1"), "phone-2=t1 tab=t2", true, nil},
		{"11th", full, fcm("one-more", "tz"), ids(full), false, ErrTooManyDevices},
		{"replace in a full list", full, fcm("da", "new"), "da=new " + ids(full[1:]), false, nil},
		{"a full list's token under a new id", full, fcm("zz", "ta"), ids(full[1:]) + " zz=ta", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, created, err := WithDevice(tt.have, tt.put)
			if !errors.Is(err, tt.err) || ids(got) != tt.want || created != tt.created {
				t.Fatalf("WithDevice = %s, created %v, %v; want %s, created %v, %v", ids(got), created, err, tt.want, tt.created, tt.err)
			}
		})
	}
}

func TestWithoutDevice(t *testing.T) {
	have := []events.Device{testDevices[1], {ID: "tab", Kind: events.DeviceFCM, Token: "t2"}}
	tests := []struct {
		name, id, hash string
		left           int
		removed        bool
		err            error
	}{
		{"unconditional", "phone", "", 1, true, nil},
		{"absent", "watch", "", 2, false, nil},
		{"absent, conditional", "watch", testDevices[1].TokenSHA256(), 2, false, nil},
		{"token still the same", "phone", testDevices[1].TokenSHA256(), 1, true, nil},
		{"registered again meanwhile", "phone", (events.Device{Kind: events.DeviceFCM, Token: "old"}).TokenSHA256(), 2, false, ErrTokenMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, removed, err := WithoutDevice(have, tt.id, tt.hash)
			if len(got) != tt.left || removed != tt.removed || !errors.Is(err, tt.err) {
				t.Fatalf("WithoutDevice = %v, %v, %v", got, removed, err)
			}
		})
	}
	if len(have) != 2 {
		t.Fatal("WithoutDevice changed its argument")
	}
	if err := CheckTokenSHA256(testDevices[1].TokenSHA256()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "abc", strings.ToUpper(testDevices[1].TokenSHA256()), testDevices[1].TokenSHA256() + "0"} {
		if err := CheckTokenSHA256(bad); err == nil {
			t.Errorf("CheckTokenSHA256(%q) accepted", bad)
		}
	}
}
