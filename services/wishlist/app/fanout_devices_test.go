package app_test

import (
	"maps"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"

	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// TestRestockCarriesTheUsersDevices: a restock's app notifications carry
// the user's fcm devices and its web ones the webpush subscriptions, as
// registered through the API before or after the entry; email and sms ones
// carry none, and a user without devices still gets app and web
// notifications (for the live websocket path) with none.
func TestRestockCarriesTheUsersDevices(t *testing.T) {
	kcfg := privateKafka(t)
	r := env.Redis(t)
	cfg := baseConfig(t, kcfg, r.URL())
	c := client{t: t, base: startServe(t, cfg)}
	sku := testenv.Unique(t, "sku")
	region := "us-east-1"
	a, b, cu, d := sku+"-a", sku+"-b", sku+"-c", sku+"-d"
	webpush := func(n string) string {
		return `{"kind":"webpush","endpoint":"https://push.example/send/` + n + `","keys":{"p256dh":"` + pushKey + `","auth":"` + pushAuth + `"}}`
	}

	c.putEntry(a, sku, region, "app", "web", "email")
	c.do("PUT", "/v1/users/"+a+"/preferences", token, "application/json", `{"contacts":{"email":"a@example.com"}}`, nil)
	c.putDevice(a, "phone", `{"kind":"fcm","token":"tok-a"}`) // after the entry: copied to it
	c.putDevice(a, "laptop", webpush("a1"))
	c.putDevice(a, "tablet", webpush("a2"))
	c.putEntry(b, sku, region, "app", "web")
	c.putDevice(cu, "phone", `{"kind":"fcm","token":"tok-c"}`) // before the entry
	c.putEntry(cu, sku, region, "app", "sms")
	c.putEntry(d, sku, region, "app")
	c.putDevice(d, "old-phone", `{"kind":"fcm","token":"tok-d1"}`)
	c.putDevice(d, "phone", `{"kind":"fcm","token":"tok-d2"}`)
	if code := c.do("DELETE", events.DeviceRemovalPath(d, events.Device{ID: "old-phone", Kind: events.DeviceFCM, Token: "tok-d1"}), token, "", "", nil); code != 204 {
		t.Fatalf("remove d's old phone: %d", code)
	}

	startFanout(t, cfg, region)
	produceEvent(t, kcfg, catalog.Restock, sku, restock(sku, region, 1, 10, nil))
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	waitDone(t, rdb, events.RestockEventID(sku, region, 1), region, 60*time.Second)

	// user/channel → the ids of the notification's devices ("" for none).
	want := map[string]string{
		a + "/app": "phone", a + "/web": "laptop,tablet", a + "/email": "",
		b + "/app": "", b + "/web": "",
		cu + "/app": "phone", cu + "/sms": "",
		d + "/app": "phone",
	}
	got := map[string]string{}
	cl := newClient(t, kcfg)
	for _, ch := range events.ChannelNames() {
		testenv.ReadTopic(t, cl, catalog.Notify(region, ch), func(m *sarama.ConsumerMessage) {
			n, err := events.DecodeNotification(m.Value)
			if err != nil {
				t.Fatalf("%s: %v", catalog.Notify(region, ch), err)
			}
			if n.SKU != sku {
				return
			}
			k := n.UserID + "/" + n.Channel
			if _, dup := got[k]; dup {
				t.Fatalf("two notifications for %s", k)
			}
			got[k] = deviceIDs(n.Devices)
			for _, dev := range n.Devices {
				if dev.Kind != events.DeviceKindOf(n.Channel) {
					t.Errorf("%s carries a %s device", k, dev.Kind)
				}
			}
			if k == a+"/app" && n.Devices[0].Token != "tok-a" {
				t.Errorf("a's app device = %+v", n.Devices[0])
			}
			if k == a+"/web" && (n.Devices[0].Endpoint != "https://push.example/send/a1" || n.Devices[0].P256dh != pushKey || n.Devices[0].Auth != pushAuth) {
				t.Errorf("a's web device = %+v", n.Devices[0])
			}
			if k == a+"/email" && n.Contact != "a@example.com" {
				t.Errorf("a's email contact = %q", n.Contact)
			}
		})
	}
	if !maps.Equal(got, want) {
		t.Fatalf("devices per notification:\n got %v\nwant %v", got, want)
	}
}
