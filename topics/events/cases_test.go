package events_test

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"backinstock/topics/events"
)

// The table of valid and invalid values shared by the decode tests and the
// schema agreement test.

var at = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func validRestock() events.RestockEvent {
	return events.RestockEvent{
		EventID: events.RestockEventID("SKU-1", "us-east-1", 3),
		SKU:     "SKU-1", Region: "us-east-1", Quantity: 5, PreviousQuantity: 0, Episode: 3, OccurredAt: at,
		Product:  &events.Product{Title: "Kettle, green", URL: "https://shop.example/p/SKU-1?ref=restock", ImageURL: "https://img.shop.example/SKU-1.jpg", Price: "19.99"},
		Delivery: &events.Delivery{Mode: events.DeliveryStockAware, PerUnit: 3, MinStock: 1, IntervalMS: 1000},
	}
}

func validStock() events.StockLevel {
	return events.StockLevel{SKU: "SKU-1", Region: "eu-west-1", Quantity: 0, Episode: 0, At: at}
}

func validWishlist() events.WishlistChange {
	return events.WishlistChange{
		UserID: "user_42", SKU: "SKU-1", Region: "ap-south-1", Channels: []string{"app", "email"}, Op: events.OpAdd, At: at,
		Locale: "en-IN", TimeZone: "Asia/Kolkata", QuietHours: &events.QuietHours{Start: "22:00", End: "07:30"},
		Contacts: map[string]string{"email": "a@example.com", "sms": "+919800000000"},
	}
}

func validPreferences() events.WishlistPreferences {
	return events.WishlistPreferences{
		UserID: "user_42",
		Preferences: &events.Preferences{
			Channels: []string{"app", "email"}, Locale: "de-DE", TimeZone: "Europe/Berlin",
			QuietHours:   &events.QuietHours{Start: "21:30", End: "06:00"},
			Contacts:     map[string]string{"email": "a@example.com", "sms": "+4915112345678", "app": "fcm:tok_1"},
			Unsubscribed: true, OptOut: []string{"sms"},
			Devices: []events.Device{
				{ID: "phone", Kind: events.DeviceFCM, Token: "fcm-token:APA91b"},
				{ID: "laptop", Kind: events.DeviceWebPush, Endpoint: "https://push.example/send/abc", P256dh: validPushKey, Auth: validPushAuth},
			},
		},
		At: at,
	}
}

func validNotification() events.Notification {
	return events.Notification{
		NotificationID: events.NotificationID("user_42", "SKU-1", "us-east-1", 3, "email"),
		RestockEventID: events.RestockEventID("SKU-1", "us-east-1", 3),
		UserID:         "user_42", SKU: "SKU-1", Region: "us-east-1", Channel: "email", Episode: 3,
		Title: "Back in stock: Kettle", Body: "The kettle on your wishlist is back.\nOnly 5 left.", URL: "https://shop.example/p/SKU-1",
		CreatedAt: at, Locale: "en-US", TimeZone: "America/New_York", QuietHours: &events.QuietHours{Start: "21:00", End: "08:00"},
		Contact: "shopper@example.com",
	}
}

// A Web Push subscription's keys as a browser gives them: a P-256 point
// (65 bytes) and a 16-byte secret, base64url without padding.
const (
	validPushKey  = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
	validPushAuth = "tBHItJI5svbpez7KI4CCXg"
)

// validPushNotification is a web notification with a device: with
// validNotification it sets every field of the schema.
func validPushNotification() events.Notification {
	n := validNotification()
	n.Channel, n.Contact = events.ChannelWeb, "web-contact-handle"
	n.NotificationID = events.NotificationID(n.UserID, n.SKU, n.Region, n.Episode, n.Channel)
	n.Devices = []events.Device{{ID: "laptop", Kind: events.DeviceWebPush, Endpoint: "https://push.example/send/abc", P256dh: validPushKey, Auth: validPushAuth}}
	return n
}

func validDeliveryStatus() events.DeliveryStatus {
	n := validNotification()
	return events.DeliveryStatus{
		EventID:        events.DeliveryEventID(n.NotificationID, 2, events.StatusSent),
		NotificationID: n.NotificationID, UserID: n.UserID, SKU: n.SKU, Region: n.Region, Channel: n.Channel,
		Status: events.StatusSent, Provider: "smtp", ProviderMessageID: "<" + n.NotificationID + "@shop.example>",
		Attempt: 2, Reason: "250 2.0.0 Ok: queued", At: at,
	}
}

func validClick() events.ClickEvent {
	n := validNotification()
	return events.ClickEvent{
		EventID: "0123456789abcdef0123456789abcdef", Type: events.ClickTypeClicked,
		NotificationID: n.NotificationID, UserID: n.UserID, SKU: n.SKU, Region: n.Region, Channel: n.Channel, Episode: n.Episode,
		URL: n.URL, At: at,
	}
}

func validOrder() events.Order {
	return events.Order{
		OrderID: "order-1001", UserID: "user_42", OrderedAt: at, Currency: "EUR", Region: "eu-west-1",
		Lines: []events.OrderLine{{SKU: "SKU-1", Quantity: 2, UnitPrice: "19.99"}, {SKU: "SKU-2", Quantity: 1, UnitPrice: "5"}},
	}
}

// del is the value that removes a key in a mutation.
type delKey struct{}

var del = delKey{}

// jsonOf encodes v, then applies mutations: each key is a dotted path
// ("product.price", "channels.1"), each value the new value or del.
func jsonOf(t *testing.T, v any, mutations map[string]any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for path, val := range mutations {
		parts := strings.Split(path, ".")
		cur := doc
		for _, p := range parts[:len(parts)-1] {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[p]
			case []any:
				i, _ := strconv.Atoi(p)
				cur = c[i]
			}
		}
		last := parts[len(parts)-1]
		switch c := cur.(type) {
		case map[string]any:
			if val == del {
				delete(c, last)
			} else {
				c[last] = val
			}
		case []any:
			i, _ := strconv.Atoi(last)
			c[i] = val
		default:
			t.Fatalf("mutation %s: no object or array at %s", path, path)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

type eventCase struct {
	schema string
	name   string
	doc    string
	// want is "" for a valid document, else text the error must contain
	// (it names the field).
	want string
	// goOnly marks rules the JSON Schema cannot express (deterministic
	// ids); the schema accepts such a document.
	goOnly bool
	// notJSON marks input that is not one JSON value, which a schema
	// validator never sees.
	notJSON bool
}

func eventCases(t *testing.T) []eventCase {
	r, s, w, n, wp := validRestock(), validStock(), validWishlist(), validNotification(), validPreferences()
	restock := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaRestockEvent, name: name, doc: jsonOf(t, r, m), want: want}
	}
	minimal := r
	minimal.Product, minimal.Delivery = nil, nil
	cases := []eventCase{
		restock("valid", nil, ""),
		eventCase{schema: events.SchemaRestockEvent, name: "valid without product and delivery", doc: jsonOf(t, minimal, nil)},
		restock("valid delivery all", map[string]any{"delivery": map[string]any{"mode": "all"}}, ""),
		restock("unknown field", map[string]any{"colour": "green"}, "colour: unknown field"),
		restock("unknown nested field", map[string]any{"product.colour": "green"}, "product.colour: unknown field"),
		restock("key in another case", map[string]any{"SKU": "SKU-1", "sku": del}, "SKU: unknown field"),
		restock("sku with a dot", map[string]any{"sku": "SKU.1"}, "sku: must match [A-Za-z0-9_-]{1,128}"),
		restock("sku with a star", map[string]any{"sku": "SKU*"}, "sku: must match"),
		restock("sku with a >", map[string]any{"sku": "SKU>"}, "sku: must match"),
		restock("sku with a space", map[string]any{"sku": "SKU 1"}, "sku: must match"),
		restock("sku with a pipe", map[string]any{"sku": "SKU|1"}, "sku: must match"),
		restock("sku too long", map[string]any{"sku": strings.Repeat("x", 129)}, "sku: must match"),
		restock("sku empty", map[string]any{"sku": ""}, "sku: required"),
		restock("sku missing", map[string]any{"sku": del}, "sku: required"),
		restock("sku null", map[string]any{"sku": nil}, "sku: must not be null"),
		restock("sku a number", map[string]any{"sku": 12}, "sku: must be a string"),
		restock("negative quantity", map[string]any{"quantity": -1}, "quantity: must be between 1 and 1000000000, got -1"),
		restock("zero quantity", map[string]any{"quantity": 0}, "quantity: must be between 1"),
		restock("quantity too large", map[string]any{"quantity": 1_000_000_001}, "quantity: must be between"),
		restock("fractional quantity", map[string]any{"quantity": 1.5}, "quantity: must be an integer"),
		restock("quantity as a string", map[string]any{"quantity": "5"}, "quantity: must be an integer"),
		restock("negative previous quantity", map[string]any{"previous_quantity": -3}, "previous_quantity: must be between 0"),
		restock("previous quantity missing", map[string]any{"previous_quantity": del}, "previous_quantity: required"),
		restock("episode 0", map[string]any{"episode": 0}, "episode: must be at least 1"),
		restock("uppercase region", map[string]any{"region": "US-EAST-1"}, "region: must match"),
		restock("region with a dot", map[string]any{"region": "us.east"}, "region: must match"),
		restock("occurred_at not a time", map[string]any{"occurred_at": "yesterday"}, "occurred_at: must be an RFC 3339 date-time"),
		restock("occurred_at missing", map[string]any{"occurred_at": del}, "occurred_at: required"),
		eventCase{schema: events.SchemaRestockEvent, name: "event_id not derived", doc: jsonOf(t, r, map[string]any{"event_id": "abc"}), want: "event_id: must be RestockEventID(sku, region, episode)", goOnly: true},
		restock("product null", map[string]any{"product": nil}, "product: must not be null"),
		restock("product without title", map[string]any{"product.title": del}, "product.title: required"),
		restock("product title with a control character", map[string]any{"product.title": "Kettle\u0007"}, "product.title: must not contain control characters"),
		restock("product title too long", map[string]any{"product.title": strings.Repeat("é", 201)}, "product.title: must be at most 200 characters"),
		restock("product price with three dots", map[string]any{"product.price": "1.2.3"}, "product.price: must be a decimal string"),
		restock("product price negative", map[string]any{"product.price": "-1"}, "product.price: must be a decimal string"),
		restock("product price a number", map[string]any{"product.price": 19.99}, "product.price: must be a string"),
		restock("product url not http", map[string]any{"product.url": "ftp://shop.example/x"}, "product.url: must be an absolute http:// or https:// URL"),
		restock("product url with a space", map[string]any{"product.url": "https://shop.example/a b"}, "product.url: must be an absolute"),
		restock("product url empty", map[string]any{"product.url": ""}, "product.url: must not be empty"),
		restock("delivery mode unknown", map[string]any{"delivery.mode": "some"}, "delivery.mode: must be all or stock_aware"),
		restock("delivery without mode", map[string]any{"delivery.mode": del}, "delivery.mode: required"),
		restock("delivery per_unit negative", map[string]any{"delivery.per_unit": -1}, "delivery.per_unit: must be between 0"),
		restock("delivery interval too long", map[string]any{"delivery.interval_ms": 86_400_001}, "delivery.interval_ms: must be between 0 and 86400000"),
		eventCase{schema: events.SchemaRestockEvent, name: "array instead of object", doc: `[1]`, want: "must be an object"},
		eventCase{schema: events.SchemaRestockEvent, name: "two values", doc: jsonOf(t, r, nil) + ` {}`, want: "unexpected data after the JSON object", notJSON: true},
		eventCase{schema: events.SchemaRestockEvent, name: "empty input", doc: ``, want: "empty input", notJSON: true},
		eventCase{schema: events.SchemaRestockEvent, name: "broken JSON", doc: `{"sku": `, want: "invalid JSON", notJSON: true},
	}

	stock := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaStockLevel, name: name, doc: jsonOf(t, s, m), want: want}
	}
	cases = append(cases,
		stock("valid sold out", nil, ""),
		stock("valid in stock", map[string]any{"quantity": 1_000_000_000, "episode": 7}, ""),
		stock("negative quantity", map[string]any{"quantity": -1}, "quantity: must be between 0"),
		stock("episode missing", map[string]any{"episode": del}, "episode: required"),
		stock("quantity missing", map[string]any{"quantity": del}, "quantity: required"),
		stock("negative episode", map[string]any{"episode": -1}, "episode: must be at least 0"),
		stock("at missing", map[string]any{"at": del}, "at: required"),
		stock("unknown field", map[string]any{"warehouse": "w1"}, "warehouse: unknown field"),
		stock("sku with a colon", map[string]any{"sku": "a:b"}, "sku: must match"),
	)

	wish := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaWishlistChange, name: name, doc: jsonOf(t, w, m), want: want}
	}
	remove := events.WishlistChange{UserID: "u1", SKU: "SKU-1", Region: "us-east-1", Op: events.OpRemove, At: at}
	cases = append(cases,
		wish("valid add", nil, ""),
		eventCase{schema: events.SchemaWishlistChange, name: "valid remove without channels", doc: jsonOf(t, remove, nil)},
		eventCase{schema: events.SchemaWishlistChange, name: "valid remove with empty channels", doc: jsonOf(t, remove, map[string]any{"channels": []any{}})},
		wish("bad channel", map[string]any{"channels.1": "fax"}, "channels[1]: must be one of app, web, email, sms"),
		wish("duplicate channel", map[string]any{"channels": []any{"app", "email", "app"}}, `channels[2]: duplicate channel "app"`),
		wish("null channel", map[string]any{"channels.1": nil}, "channels[1]: must not be null"),
		wish("add without channels", map[string]any{"channels": del}, "channels: at least one channel is required for op add"),
		wish("add with empty channels", map[string]any{"channels": []any{}}, "channels: at least one channel is required for op add"),
		wish("channels not an array", map[string]any{"channels": "app"}, "channels: must be an array"),
		wish("unknown op", map[string]any{"op": "upsert"}, "op: must be add or remove"),
		wish("op missing", map[string]any{"op": del}, "op: required"),
		wish("user id with a >", map[string]any{"user_id": "u>1"}, "user_id: must match"),
		wish("user id with a star", map[string]any{"user_id": "*"}, "user_id: must match"),
		wish("contact email wrong", map[string]any{"contacts.email": "not-an-email"}, "contacts.email: must be an email address"),
		wish("contact sms wrong", map[string]any{"contacts.sms": "12345"}, "contacts.sms: must be an E.164 phone number"),
		wish("contact for an unknown channel", map[string]any{"contacts.fax": "123"}, "contacts.fax: must be one of"),
		wish("quiet hours without a time zone", map[string]any{"time_zone": del}, "time_zone: required when quiet_hours is set"),
		wish("quiet hours 24:00", map[string]any{"quiet_hours.start": "24:00"}, "quiet_hours.start: must be a time HH:MM"),
		wish("quiet hours without end", map[string]any{"quiet_hours.end": del}, "quiet_hours.end: required"),
		wish("locale not a tag", map[string]any{"locale": "english"}, "locale: must be a BCP 47 language tag"),
		wish("time zone with a space", map[string]any{"time_zone": "Asia/New Delhi"}, "time_zone: must be an IANA time zone name"),
	)

	prefs := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaWishlistPreferences, name: name, doc: jsonOf(t, wp, m), want: want}
	}
	cleared := events.WishlistPreferences{UserID: "u1", At: at}
	cases = append(cases,
		prefs("valid", nil, ""),
		eventCase{schema: events.SchemaWishlistPreferences, name: "valid cleared", doc: jsonOf(t, cleared, nil)},
		eventCase{schema: events.SchemaWishlistPreferences, name: "valid empty preferences", doc: jsonOf(t, cleared, map[string]any{"preferences": map[string]any{}})},
		prefs("valid subscribed said explicitly", map[string]any{"preferences.unsubscribed": false}, ""),
		prefs("valid empty channel lists", map[string]any{"preferences.channels": []any{}, "preferences.opt_out": []any{}}, ""),
		prefs("valid without quiet hours and time zone", map[string]any{"preferences.quiet_hours": del, "preferences.time_zone": del}, ""),
		prefs("user id missing", map[string]any{"user_id": del}, "user_id: required"),
		prefs("user id with a pipe", map[string]any{"user_id": "u|1"}, "user_id: must match"),
		prefs("user id with a tilde", map[string]any{"user_id": "~prefs"}, "user_id: must match"),
		prefs("at missing", map[string]any{"at": del}, "at: required"),
		prefs("at not a time", map[string]any{"at": "now"}, "at: must be an RFC 3339 date-time"),
		prefs("preferences null", map[string]any{"preferences": nil}, "preferences: must not be null"),
		prefs("preferences not an object", map[string]any{"preferences": "all"}, "preferences: must be an object"),
		prefs("unknown field", map[string]any{"op": "add"}, "op: unknown field"),
		prefs("unknown nested field", map[string]any{"preferences.theme": "dark"}, "preferences.theme: unknown field"),
		prefs("key in another case", map[string]any{"preferences.Locale": "en-US", "preferences.locale": del}, "preferences.Locale: unknown field"),
		prefs("bad default channel", map[string]any{"preferences.channels": []any{"app", "fax"}}, "preferences.channels[1]: must be one of app, web, email, sms"),
		prefs("duplicate default channel", map[string]any{"preferences.channels": []any{"app", "app"}}, `preferences.channels[1]: duplicate channel "app"`),
		prefs("bad opt-out channel", map[string]any{"preferences.opt_out": []any{"pigeon"}}, "preferences.opt_out[0]: must be one of"),
		prefs("duplicate opt-out channel", map[string]any{"preferences.opt_out": []any{"sms", "sms"}}, `preferences.opt_out[1]: duplicate channel "sms"`),
		prefs("opt_out not an array", map[string]any{"preferences.opt_out": "sms"}, "preferences.opt_out: must be an array"),
		prefs("unsubscribed a string", map[string]any{"preferences.unsubscribed": "yes"}, "preferences.unsubscribed: must be true or false"),
		prefs("unsubscribed null", map[string]any{"preferences.unsubscribed": nil}, "preferences.unsubscribed: must not be null"),
		prefs("locale not a tag", map[string]any{"preferences.locale": "german"}, "preferences.locale: must be a BCP 47 language tag"),
		prefs("locale empty", map[string]any{"preferences.locale": ""}, "preferences.locale: must not be empty"),
		prefs("time zone with a space", map[string]any{"preferences.time_zone": "Europe/New Berlin"}, "preferences.time_zone: must be an IANA time zone name"),
		prefs("time zone too long", map[string]any{"preferences.time_zone": strings.Repeat("A", 65)}, "preferences.time_zone: must be at most 64 characters"),
		prefs("quiet hours without a time zone", map[string]any{"preferences.time_zone": del}, "preferences.time_zone: required when quiet_hours is set"),
		prefs("quiet hours 24:00", map[string]any{"preferences.quiet_hours.end": "24:00"}, "preferences.quiet_hours.end: must be a time HH:MM"),
		prefs("quiet hours without start", map[string]any{"preferences.quiet_hours.start": del}, "preferences.quiet_hours.start: required"),
		prefs("quiet hours with an unknown field", map[string]any{"preferences.quiet_hours.days": "mon"}, "preferences.quiet_hours.days: unknown field"),
		prefs("contact email wrong", map[string]any{"preferences.contacts.email": "nobody"}, "preferences.contacts.email: must be an email address"),
		prefs("contact sms wrong", map[string]any{"preferences.contacts.sms": "0151"}, "preferences.contacts.sms: must be an E.164 phone number"),
		prefs("contact app empty", map[string]any{"preferences.contacts.app": ""}, "preferences.contacts.app: required"),
		prefs("contact for an unknown channel", map[string]any{"preferences.contacts.fax": "123"}, "preferences.contacts.fax: must be one of"),
		prefs("contact a number", map[string]any{"preferences.contacts.sms": 4915112345678}, "preferences.contacts.sms: must be a string"),
		prefs("valid without devices", map[string]any{"preferences.devices": del}, ""),
		prefs("devices of both kinds with a key padded", map[string]any{"preferences.devices": []any{
			map[string]any{"id": "phone", "kind": "fcm", "token": "t1"},
			map[string]any{"id": "laptop", "kind": "webpush", "endpoint": "https://push.example/x", "p256dh": validPushKey + "=", "auth": validPushAuth},
		}}, ""),
		prefs("device without token", map[string]any{"preferences.devices": []any{map[string]any{"id": "phone", "kind": "fcm"}}}, "preferences.devices[0].token: required"),
		prefs("device of an unknown kind", map[string]any{"preferences.devices": []any{map[string]any{"id": "phone", "kind": "apns", "token": "t"}}}, "preferences.devices[0].kind: must be one of fcm, webpush"),
		prefs("device subscription key short", map[string]any{"preferences.devices": []any{map[string]any{"id": "b", "kind": "webpush", "endpoint": "https://push.example/x", "p256dh": "AAAA", "auth": validPushAuth}}}, "preferences.devices[0].p256dh: must be 65 bytes"),
		prefs("device with an unknown field", map[string]any{"preferences.devices": []any{map[string]any{"id": "phone", "kind": "fcm", "token": "t", "apns": "x"}}}, "apns"),
		prefs("too many devices", map[string]any{"preferences.devices": func() []any {
			out := make([]any, events.MaxDevices+1)
			for i := range out {
				out[i] = map[string]any{"id": "d" + strconv.Itoa(i), "kind": "fcm", "token": "t" + strconv.Itoa(i)}
			}
			return out
		}()}, "preferences.devices: must hold at most 10 devices"),
		func() eventCase {
			c := prefs("device id repeated", map[string]any{"preferences.devices": []any{
				map[string]any{"id": "phone", "kind": "fcm", "token": "t1"}, map[string]any{"id": "phone", "kind": "fcm", "token": "t2"}}},
				"preferences.devices[1].id: repeats")
			c.goOnly = true // uniqueness of a property across items: beyond JSON Schema
			return c
		}(),
		eventCase{schema: events.SchemaWishlistPreferences, name: "a WishlistChange", doc: jsonOf(t, w, nil), want: "sku: unknown field"},
	)

	notif := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaNotification, name: name, doc: jsonOf(t, n, m), want: want}
	}
	app := n
	app.Channel, app.Contact, app.QuietHours, app.Locale, app.TimeZone = "app", "", nil, "", ""
	app.NotificationID = events.NotificationID(app.UserID, app.SKU, app.Region, app.Episode, app.Channel)
	cases = append(cases,
		notif("valid email", nil, ""),
		eventCase{schema: events.SchemaNotification, name: "valid app minimal", doc: jsonOf(t, app, nil)},
		eventCase{schema: events.SchemaNotification, name: "valid app with a push token", doc: jsonOf(t, app, map[string]any{"contact": "fcm:tok_123/abc"})},
		notif("unknown channel", map[string]any{"channel": "fax"}, "channel: must be one of app, web, email, sms"),
		eventCase{schema: events.SchemaNotification, name: "notification id not derived", doc: jsonOf(t, n, map[string]any{"notification_id": "n1"}), want: "notification_id: must be NotificationID(user_id, sku, region, episode, channel)", goOnly: true},
		eventCase{schema: events.SchemaNotification, name: "notification id of another channel", doc: jsonOf(t, n, map[string]any{"channel": "web", "contact": del}), want: "notification_id: must be NotificationID", goOnly: true},
		eventCase{schema: events.SchemaNotification, name: "restock event id not derived", doc: jsonOf(t, n, map[string]any{"restock_event_id": "r1"}), want: "restock_event_id: must be RestockEventID(sku, region, episode)", goOnly: true},
		notif("notification id with a dot", map[string]any{"notification_id": "a.b"}, "notification_id: must match"),
		notif("empty title", map[string]any{"title": ""}, "title: required"),
		notif("body too long", map[string]any{"body": strings.Repeat("b", 2001)}, "body: must be at most 2000 characters"),
		notif("url not a url", map[string]any{"url": "shop.example/p"}, "url: must be an absolute"),
		notif("url missing", map[string]any{"url": del}, "url: required"),
		notif("email contact wrong", map[string]any{"contact": "+14155550100"}, "contact: must be an email address"),
		notif("sms contact wrong", map[string]any{"channel": "sms", "contact": "hello", "notification_id": events.NotificationID("user_42", "SKU-1", "us-east-1", 3, "sms")}, "contact: must be an E.164 phone number"),
		notif("contact empty", map[string]any{"contact": ""}, "contact: must not be empty"),
		notif("episode 0", map[string]any{"episode": 0}, "episode: must be at least 1"),
		notif("created_at missing", map[string]any{"created_at": del}, "created_at: required"),
		notif("user id with a space", map[string]any{"user_id": "user 42"}, "user_id: must match"),
		notif("unknown field", map[string]any{"priority": "high"}, "priority: unknown field"),
	)

	// Push devices: fcm on app, webpush on web, none elsewhere.
	web := app
	web.Channel = "web"
	web.NotificationID = events.NotificationID(web.UserID, web.SKU, web.Region, web.Episode, web.Channel)
	appCase := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaNotification, name: name, doc: jsonOf(t, app, m), want: want}
	}
	webCase := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaNotification, name: name, doc: jsonOf(t, web, m), want: want}
	}
	fcm := map[string]any{"id": "phone", "kind": "fcm", "token": "fcm-token:APA91b"}
	sub := map[string]any{"id": "laptop", "kind": "webpush", "endpoint": "https://push.example/send/abc",
		"p256dh": validPushKey, "auth": validPushAuth}
	with := func(d map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range d {
			out[kk] = vv
		}
		if v == del {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	many := make([]any, events.MaxDevices+1)
	for i := range many {
		many[i] = with(fcm, "id", "d"+strconv.Itoa(i))
	}
	cases = append(cases,
		appCase("valid app with devices", map[string]any{"devices": []any{fcm, with(fcm, "id", "tablet")}}, ""),
		webCase("valid web with a subscription", map[string]any{"devices": []any{sub}}, ""),
		webCase("valid web with padded keys", map[string]any{"devices": []any{with(with(sub, "p256dh", validPushKey+"="), "auth", validPushAuth+"==")}}, ""),
		appCase("webpush device on app", map[string]any{"devices": []any{sub}}, "devices[0].kind: must be fcm on this channel"),
		webCase("fcm device on web", map[string]any{"devices": []any{fcm}}, "devices[0].kind: must be webpush on this channel"),
		notif("devices on email", map[string]any{"devices": []any{fcm}}, "devices: must be empty on the email channel"),
		appCase("unknown device kind", map[string]any{"devices": []any{with(fcm, "kind", "apns")}}, "devices[0].kind: must be one of fcm, webpush"),
		appCase("fcm without token", map[string]any{"devices": []any{with(fcm, "token", del)}}, "devices[0].token: required"),
		appCase("fcm with an endpoint", map[string]any{"devices": []any{with(fcm, "endpoint", "https://push.example/x")}}, "devices[0].endpoint: must be empty for an fcm device"),
		webCase("subscription without endpoint", map[string]any{"devices": []any{with(sub, "endpoint", del)}}, "devices[0].endpoint: required"),
		webCase("subscription endpoint not a url", map[string]any{"devices": []any{with(sub, "endpoint", "push.example/x")}}, "devices[0].endpoint: must be an absolute"),
		webCase("subscription key short", map[string]any{"devices": []any{with(sub, "p256dh", "AAAA")}}, "devices[0].p256dh: must be 65 bytes in base64url"),
		webCase("subscription auth missing", map[string]any{"devices": []any{with(sub, "auth", del)}}, "devices[0].auth: required"),
		func() eventCase {
			c := appCase("device id repeated", map[string]any{"devices": []any{fcm, fcm}}, "devices[1].id: repeats")
			c.goOnly = true // uniqueness of a property across items: beyond JSON Schema
			return c
		}(),
		appCase("device id with a dot", map[string]any{"devices": []any{with(fcm, "id", "a.b")}}, "devices[0].id: must match"),
		appCase("too many devices", map[string]any{"devices": many}, "devices: must hold at most 10 devices"),
		appCase("device unknown field", map[string]any{"devices": []any{with(fcm, "apns", "x")}}, "apns"),
	)

	d := validDeliveryStatus()
	status := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaDeliveryStatus, name: name, doc: jsonOf(t, d, m), want: want}
	}
	failed := d
	failed.Status, failed.Reason, failed.ProviderMessageID = events.StatusFailed, "smtp 550 5.1.0 mailbox unavailable", ""
	failed.EventID = events.DeliveryEventID(failed.NotificationID, failed.Attempt, failed.Status)
	bare := d
	bare.Reason, bare.ProviderMessageID = "", ""
	cases = append(cases,
		status("valid sent", nil, ""),
		eventCase{schema: events.SchemaDeliveryStatus, name: "valid failed", doc: jsonOf(t, failed, nil)},
		eventCase{schema: events.SchemaDeliveryStatus, name: "valid minimal", doc: jsonOf(t, bare, nil)},
		eventCase{schema: events.SchemaDeliveryStatus, name: "failed without a reason", doc: jsonOf(t, failed, map[string]any{"reason": del}), want: "reason: required"},
		eventCase{schema: events.SchemaDeliveryStatus, name: "event id of another status", doc: jsonOf(t, failed, map[string]any{"status": events.StatusSent}), want: "event_id: must be DeliveryEventID(notification_id, attempt, status)", goOnly: true},
		eventCase{schema: events.SchemaDeliveryStatus, name: "event id not derived", doc: jsonOf(t, d, map[string]any{"event_id": "e1"}), want: "event_id: must be DeliveryEventID", goOnly: true},
		status("unknown status", map[string]any{"status": "clicked"}, "status: must be one of queued, sent, delivered, failed, bounced, undelivered"),
		status("status missing", map[string]any{"status": del}, "status: required"),
		status("provider missing", map[string]any{"provider": del}, "provider: required"),
		status("provider in capitals", map[string]any{"provider": "SMTP"}, "provider: must be a provider name"),
		status("attempt 0", map[string]any{"attempt": 0}, "attempt: must be between 1 and 10000"),
		status("attempt fractional", map[string]any{"attempt": 1.5}, "attempt: must be an integer"),
		status("attempt missing", map[string]any{"attempt": del}, "attempt: required"),
		status("reason with a control character", map[string]any{"reason": "bad\u0007"}, "reason: must not contain control characters"),
		status("reason too long", map[string]any{"reason": strings.Repeat("r", 1001)}, "reason: must be at most 1000 characters"),
		status("reason empty", map[string]any{"reason": ""}, "reason: must not be empty"),
		status("provider message id empty", map[string]any{"provider_message_id": ""}, "provider_message_id: must not be empty"),
		status("bad channel", map[string]any{"channel": "fax"}, "channel: must be one of app, web, email, sms"),
		status("notification id with a dot", map[string]any{"notification_id": "a.b"}, "notification_id: must match"),
		status("at missing", map[string]any{"at": del}, "at: required"),
		status("unknown field", map[string]any{"clicked_at": "2025-01-01T00:00:00Z"}, "clicked_at: unknown field"),
	)

	ce := validClick()
	click := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaClickEvent, name: name, doc: jsonOf(t, ce, m), want: want}
	}
	cases = append(cases,
		click("valid", nil, ""),
		click("type missing", map[string]any{"type": del}, "type: required"),
		click("type unknown", map[string]any{"type": "opened"}, "type: must be clicked"),
		click("url not http", map[string]any{"url": "javascript:alert(1)"}, "url: must be an absolute http:// or https:// URL"),
		click("url missing", map[string]any{"url": del}, "url: required"),
		click("episode 0", map[string]any{"episode": 0}, "episode: must be at least 1"),
		click("event id with a dot", map[string]any{"event_id": "a.b"}, "event_id: must match"),
		click("bad channel", map[string]any{"channel": "fax"}, "channel: must be one of app, web, email, sms"),
		click("at missing", map[string]any{"at": del}, "at: required"),
		click("unknown field", map[string]any{"user_agent": "x"}, "user_agent: unknown field"),
		eventCase{schema: events.SchemaClickEvent, name: "notification id not derived", doc: jsonOf(t, ce, map[string]any{"notification_id": "n1"}),
			want: "notification_id: must be NotificationID(user_id, sku, region, episode, channel)", goOnly: true},
	)

	ord := validOrder()
	order := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaOrder, name: name, doc: jsonOf(t, ord, m), want: want}
	}
	manyLines := make([]any, events.MaxOrderLines+1)
	for i := range manyLines {
		manyLines[i] = map[string]any{"sku": "S", "quantity": 1, "unit_price": "1"}
	}
	cases = append(cases,
		order("valid", nil, ""),
		order("without region", map[string]any{"region": del}, ""),
		order("JPY without decimals", map[string]any{"currency": "JPY", "lines.0.unit_price": "1500", "lines.1.unit_price": "300"}, ""),
		order("order id missing", map[string]any{"order_id": del}, "order_id: required"),
		order("order id with a dot", map[string]any{"order_id": "a.b"}, "order_id: must match"),
		order("user missing", map[string]any{"user_id": del}, "user_id: required"),
		order("ordered_at missing", map[string]any{"ordered_at": del}, "ordered_at: required"),
		order("ordered_at not a time", map[string]any{"ordered_at": "yesterday"}, "ordered_at"),
		order("currency lower case", map[string]any{"currency": "eur"}, "currency: must be an ISO 4217 code"),
		order("currency missing", map[string]any{"currency": del}, "currency: required"),
		order("lines missing", map[string]any{"lines": del}, "lines: required"),
		order("lines empty", map[string]any{"lines": []any{}}, "lines: must hold 1 to 100 lines, got 0"),
		order("too many lines", map[string]any{"lines": manyLines}, "lines: must hold 1 to 100 lines, got 101"),
		order("line sku missing", map[string]any{"lines.1.sku": del}, "lines[1].sku: required"),
		order("quantity 0", map[string]any{"lines.0.quantity": 0}, "lines[0].quantity: must be between 1 and 1000000"),
		order("quantity too large", map[string]any{"lines.0.quantity": 1_000_001}, "lines[0].quantity: must be between 1 and 1000000"),
		order("unit price a number", map[string]any{"lines.0.unit_price": 19.99}, "lines[0].unit_price"),
		order("unit price negative", map[string]any{"lines.0.unit_price": "-1"}, "lines[0].unit_price: must be a decimal string"),
		order("unit price missing", map[string]any{"lines.0.unit_price": del}, "lines[0].unit_price: required"),
		order("line unknown field", map[string]any{"lines.0.discount": "1"}, "lines[0].discount: unknown field"),
		order("bad region", map[string]any{"region": "EU"}, "region: must match"),
		order("unknown field", map[string]any{"total": "39.98"}, "total: unknown field"),
		eventCase{schema: events.SchemaOrder, name: "cents of a currency without", doc: jsonOf(t, ord, map[string]any{"currency": "JPY"}),
			want: "lines[0].unit_price: has 2 decimals; JPY has 0", goOnly: true},
		eventCase{schema: events.SchemaOrder, name: "line total too large", doc: jsonOf(t, ord, map[string]any{"lines.0.quantity": 1_000_000, "lines.0.unit_price": "999999999999"}),
			want: "lines[0].unit_price: quantity × unit_price must be at most", goOnly: true},
	)

	wh := events.NewWebhookEvent(n)
	hook := func(name string, m map[string]any, want string) eventCase {
		return eventCase{schema: events.SchemaWebhookEvent, name: name, doc: jsonOf(t, wh, m), want: want}
	}
	bareHook := events.NewWebhookEvent(app)
	cases = append(cases,
		hook("valid", nil, ""),
		eventCase{schema: events.SchemaWebhookEvent, name: "valid app without locale and contact", doc: jsonOf(t, bareHook, nil)},
		hook("another type", map[string]any{"type": "notification.sent"}, `type: must be "notification.back_in_stock"`),
		hook("type missing", map[string]any{"type": del}, "type: required"),
		hook("timestamp missing", map[string]any{"timestamp": del}, "timestamp: required"),
		hook("timestamp not a time", map[string]any{"timestamp": "yesterday"}, "timestamp: must be an RFC 3339 date-time"),
		hook("data missing", map[string]any{"data": del}, "data: required"),
		hook("data sku missing", map[string]any{"data.sku": del}, "data.sku: required"),
		hook("data url not a url", map[string]any{"data.url": "shop.example/p"}, "data.url: must be an absolute"),
		hook("data email contact wrong", map[string]any{"data.contact": "+14155550100"}, "data.contact: must be an email address"),
		hook("data contact empty", map[string]any{"data.contact": ""}, "data.contact: must not be empty"),
		hook("data unknown field", map[string]any{"data.time_zone": "Europe/Berlin"}, "data.time_zone: unknown field"),
		hook("unknown field", map[string]any{"id": "x"}, "id: unknown field"),
		eventCase{schema: events.SchemaWebhookEvent, name: "notification id not derived", doc: jsonOf(t, wh, map[string]any{"data.notification_id": "n1"}), want: "data.notification_id: must be NotificationID", goOnly: true},
	)
	return cases
}
