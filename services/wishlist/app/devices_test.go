package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// A Web Push subscription's keys as a browser gives them.
const (
	pushKey  = "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM"
	pushAuth = "tBHItJI5svbpez7KI4CCXg"
)

type apiError struct {
	Error struct{ Code, Message string }
}

func (c client) devices(user string) []events.Device {
	c.t.Helper()
	var v struct {
		UserID  string `json:"user_id"`
		Devices []events.Device
	}
	if code := c.do("GET", "/v1/users/"+user+"/devices", token, "", "", &v); code != 200 || v.UserID != user {
		c.t.Fatalf("GET devices of %s: %d %+v", user, code, v)
	}
	return v.Devices
}

func (c client) putDevice(user, id, body string) events.Device {
	c.t.Helper()
	var d events.Device
	if code := c.do("PUT", "/v1/users/"+user+"/devices/"+id, token, "application/json", body, &d); code != 200 && code != 201 {
		c.t.Fatalf("PUT device %s/%s: %d", user, id, code)
	}
	return d
}

func deviceIDs(ds []events.Device) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.ID)
	}
	return strings.Join(s, ",")
}

// TestAPIDevices registers, replaces, lists and removes devices, in both
// Web Push body forms, with the limit, the conditional removal the gateway
// uses, and preferences PUTs that leave the devices alone.
func TestAPIDevices(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	c := client{t: t, base: startServe(t, baseConfig(t, kcfg, r.URL()))}
	user := testenv.Unique(t, "u")
	dev := func(id string) string { return "/v1/users/" + user + "/devices/" + id }

	if ds := c.devices(user); len(ds) != 0 {
		t.Fatalf("devices of a new user = %+v", ds)
	}
	// New id: 201; same id again: 200, replaced.
	if code := c.do("PUT", dev("phone"), token, "application/json", `{"kind":"fcm","token":"tok-1"}`, nil); code != 201 {
		t.Fatalf("first PUT: %d, want 201", code)
	}
	var d events.Device
	if code := c.do("PUT", dev("phone"), token, "application/json", `{"kind":"fcm","token":"tok-2"}`, &d); code != 200 || d.Token != "tok-2" || d.ID != "phone" {
		t.Fatalf("second PUT: %d %+v, want 200 with tok-2", code, d)
	}
	// Web Push flat, and as PushSubscription.toJSON() gives it.
	c.putDevice(user, "laptop", `{"kind":"webpush","endpoint":"https://push.example/send/1","p256dh":"`+pushKey+`","auth":"`+pushAuth+`"}`)
	got := c.putDevice(user, "browser", `{"kind":"webpush","endpoint":"https://push.example/send/2","expirationTime":null,"keys":{"p256dh":"`+pushKey+`","auth":"`+pushAuth+`"}}`)
	if got.P256dh != pushKey || got.Auth != pushAuth || got.Endpoint != "https://push.example/send/2" {
		t.Fatalf("toJSON form stored as %+v", got)
	}
	if ids := deviceIDs(c.devices(user)); ids != "browser,laptop,phone" {
		t.Fatalf("devices = %s", ids)
	}
	// The same endpoint under a new id moves there.
	c.putDevice(user, "browser-2", `{"kind":"webpush","endpoint":"https://push.example/send/2","keys":{"p256dh":"`+pushKey+`","auth":"`+pushAuth+`"},"expirationTime":1735689600000}`)
	if ids := deviceIDs(c.devices(user)); ids != "browser-2,laptop,phone" {
		t.Fatalf("devices after the endpoint moved = %s", ids)
	}

	// Preferences: a PUT keeps the devices, GET does not show them, and a
	// PUT that names devices is refused.
	if code := c.do("PUT", "/v1/users/"+user+"/preferences", token, "application/json", `{"locale":"de-DE","contacts":{"email":"a@example.com"}}`, nil); code != 200 {
		t.Fatalf("put preferences: %d", code)
	}
	var prefs struct{ Preferences map[string]any }
	c.do("GET", "/v1/users/"+user+"/preferences", token, "", "", &prefs)
	if _, ok := prefs.Preferences["devices"]; ok || prefs.Preferences["locale"] != "de-DE" {
		t.Fatalf("preferences = %+v", prefs.Preferences)
	}
	if ids := deviceIDs(c.devices(user)); ids != "browser-2,laptop,phone" {
		t.Fatalf("devices after a preferences PUT = %s", ids)
	}
	var e apiError
	if code := c.do("PUT", "/v1/users/"+user+"/preferences", token, "application/json", `{"devices":[{"id":"x","kind":"fcm","token":"t"}]}`, &e); code != 422 || !strings.Contains(e.Error.Message, "devices") {
		t.Fatalf("preferences with devices: %d %+v", code, e)
	}

	// The conditional removal: a hash of an old token leaves the device
	// registered again with a new one (412), the current hash removes it.
	phone := events.Device{ID: "phone", Kind: events.DeviceFCM, Token: "tok-2"}
	old := events.Device{ID: "phone", Kind: events.DeviceFCM, Token: "tok-1"}
	if code := c.do("DELETE", events.DeviceRemovalPath(user, old), token, "", "", &e); code != 412 || e.Error.Code != "token_mismatch" {
		t.Fatalf("DELETE with the old token's hash: %d %+v, want 412 token_mismatch", code, e)
	}
	if ids := deviceIDs(c.devices(user)); ids != "browser-2,laptop,phone" {
		t.Fatalf("devices after a mismatched removal = %s", ids)
	}
	for range 2 { // the second is the gateway's repeat after a lost answer
		if code := c.do("DELETE", events.DeviceRemovalPath(user, phone), token, "", "", nil); code != 204 {
			t.Fatalf("DELETE with the current token's hash: %d", code)
		}
	}
	laptop := events.Device{ID: "laptop", Kind: events.DeviceWebPush, Endpoint: "https://push.example/send/1"}
	if code := c.do("DELETE", events.DeviceRemovalPath(user, laptop), token, "", "", nil); code != 204 {
		t.Fatalf("DELETE of a subscription by its endpoint's hash: %d", code)
	}
	if code := c.do("DELETE", dev("browser-2"), token, "", "", nil); code != 204 {
		t.Fatalf("unconditional DELETE: %d", code)
	}
	if code := c.do("DELETE", dev("never-was"), token, "", "", nil); code != 204 {
		t.Fatalf("DELETE of an absent device: %d", code)
	}
	if ds := c.devices(user); len(ds) != 0 {
		t.Fatalf("devices after removing all = %+v", ds)
	}
	// The preferences set above are still there.
	c.do("GET", "/v1/users/"+user+"/preferences", token, "", "", &prefs)
	if prefs.Preferences["locale"] != "de-DE" {
		t.Fatalf("preferences after the devices went = %+v", prefs.Preferences)
	}

	// Ten devices at once (concurrent registrations of one user are all
	// kept), then the 11th is a 409 and changes nothing.
	var wg sync.WaitGroup
	for i := range events.MaxDevices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := fmt.Sprintf(`{"kind":"fcm","token":"tok-%d"}`, i)
			req := client{t: t, base: c.base}
			if code := req.do("PUT", dev(fmt.Sprintf("d%02d", i)), token, "application/json", body, nil); code != 201 {
				t.Errorf("concurrent PUT %d: %d", i, code)
			}
		}()
	}
	wg.Wait()
	if n := len(c.devices(user)); n != events.MaxDevices {
		t.Fatalf("after %d concurrent registrations: %d devices", events.MaxDevices, n)
	}
	if code := c.do("PUT", dev("one-more"), token, "application/json", `{"kind":"fcm","token":"tok-x"}`, &e); code != 409 || e.Error.Code != "too_many_devices" || !strings.Contains(e.Error.Message, "10 devices") {
		t.Fatalf("11th device: %d %+v, want 409 too_many_devices", code, e)
	}
	// Replacing one of the ten is fine.
	if code := c.do("PUT", dev("d03"), token, "application/json", `{"kind":"fcm","token":"tok-new"}`, nil); code != 200 {
		t.Fatalf("replace in a full list: %d", code)
	}
	if n := len(c.devices(user)); n != events.MaxDevices {
		t.Fatalf("devices after the refused 11th = %d", n)
	}
}

// TestAPIDeviceBadInputChangesNothing: every bad device request gets its
// status and code, naming the field, and writes neither Redis nor the log.
func TestAPIDeviceBadInputChangesNothing(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	c := client{t: t, base: startServe(t, baseConfig(t, kcfg, r.URL()))}
	user := testenv.Unique(t, "u")
	c.putDevice(user, "phone", `{"kind":"fcm","token":"tok-1"}`)

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	cl := newClient(t, kcfg)
	ctx := context.Background()
	dump := func() string {
		all, err := rdb.HGetAll(ctx, "wl:{"+user+"}:user").Result()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(all)
		return string(b)
	}
	before, keysBefore := dump(), rdb.DBSize(ctx).Val()
	logBefore := endOffsets(t, cl, catalog.WishlistChanges)

	dev := "/v1/users/" + user + "/devices/tab"
	sub := func(extra string) string {
		return `{"kind":"webpush","endpoint":"https://push.example/s"` + extra + `}`
	}
	keys := `,"p256dh":"` + pushKey + `","auth":"` + pushAuth + `"`
	tests := []struct {
		name, method, path, tok, body string
		status                        int
		code, mention                 string
	}{
		{"no token", "PUT", dev, "", `{"kind":"fcm","token":"t"}`, 401, "unauthorized", ""},
		{"no token on delete", "DELETE", "/v1/users/" + user + "/devices/phone", "", "", 401, "unauthorized", ""},
		{"no token on list", "GET", "/v1/users/" + user + "/devices", "", "", 401, "unauthorized", ""},
		{"unknown kind", "PUT", dev, token, `{"kind":"apns","token":"t"}`, 422, "invalid", "device.kind"},
		{"no kind", "PUT", dev, token, `{"token":"t"}`, 422, "invalid", "device.kind"},
		{"fcm without token", "PUT", dev, token, `{"kind":"fcm"}`, 422, "invalid", "device.token: required"},
		{"fcm with an endpoint", "PUT", dev, token, `{"kind":"fcm","token":"t","endpoint":"https://push.example/s"}`, 422, "invalid", "device.endpoint"},
		{"fcm token with a control character", "PUT", dev, token, `{"kind":"fcm","token":"t\u0001"}`, 422, "invalid", "device.token"},
		{"webpush without endpoint", "PUT", dev, token, `{"kind":"webpush"` + keys + `}`, 422, "invalid", "device.endpoint: required"},
		{"webpush endpoint not a URL", "PUT", dev, token, `{"kind":"webpush","endpoint":"push.example/s"` + keys + `}`, 422, "invalid", "device.endpoint"},
		{"webpush short key", "PUT", dev, token, sub(`,"p256dh":"AAAA","auth":"` + pushAuth + `"`), 422, "invalid", "device.p256dh"},
		{"webpush without auth", "PUT", dev, token, sub(`,"keys":{"p256dh":"` + pushKey + `","auth":""}`), 422, "invalid", "device.auth: required"},
		{"webpush with a token", "PUT", dev, token, sub(keys + `,"token":"t"`), 422, "invalid", "device.token"},
		{"keys twice", "PUT", dev, token, sub(keys + `,"keys":{"p256dh":"` + pushKey + `","auth":"` + pushAuth + `"}`), 422, "invalid", "keys"},
		{"expirationTime on fcm", "PUT", dev, token, `{"kind":"fcm","token":"t","expirationTime":1}`, 422, "invalid", "expirationTime"},
		{"unknown field", "PUT", dev, token, `{"kind":"fcm","token":"t","platform":"ios"}`, 400, "bad_request", "platform"},
		{"unknown field in keys", "PUT", dev, token, sub(`,"keys":{"p256dh":"` + pushKey + `","auth":"` + pushAuth + `","x":1}`), 400, "bad_request", "keys.x"},
		{"duplicate key", "PUT", dev, token, `{"kind":"fcm","token":"t","token":"u"}`, 400, "bad_request", `duplicate key "token"`},
		{"id with a dot", "PUT", "/v1/users/" + user + "/devices/a.b", token, `{"kind":"fcm","token":"t"}`, 422, "invalid", "device_id"},
		{"user with a space", "PUT", "/v1/users/a%20b/devices/x", token, `{"kind":"fcm","token":"t"}`, 422, "invalid", "user_id"},
		{"delete with a malformed hash", "DELETE", "/v1/users/" + user + "/devices/phone?token_sha256=abc", token, "", 422, "invalid", "token_sha256"},
		{"delete with an upper-case hash", "DELETE", "/v1/users/" + user + "/devices/phone?token_sha256=" + strings.Repeat("A", 64), token, "", 422, "invalid", "token_sha256"},
		{"delete of another token", "DELETE", events.DeviceRemovalPath(user, events.Device{ID: "phone", Kind: events.DeviceFCM, Token: "tok-0"}), token, "", 412, "token_mismatch", "registered again"},
		{"delete bad id", "DELETE", "/v1/users/" + user + "/devices/a*", token, "", 422, "invalid", "device_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var e apiError
			c.t = t
			ct := ""
			if tt.body != "" {
				ct = "application/json"
			}
			status := c.do(tt.method, tt.path, tt.tok, ct, tt.body, &e)
			if status != tt.status || e.Error.Code != tt.code || !strings.Contains(e.Error.Message, tt.mention) {
				t.Fatalf("got %d %q (%s), want %d %q naming %q", status, e.Error.Code, e.Error.Message, tt.status, tt.code, tt.mention)
			}
		})
	}
	if got := dump(); got != before {
		t.Errorf("the user's record changed:\n before %s\n after  %s", before, got)
	}
	if got := rdb.DBSize(ctx).Val(); got != keysBefore {
		t.Errorf("redis keys: %d before, %d after", keysBefore, got)
	}
	if got := endOffsets(t, cl, catalog.WishlistChanges); got != logBefore {
		t.Errorf("changelog records: %d before, %d after the bad requests", logBefore, got)
	}
}
