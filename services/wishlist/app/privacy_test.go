package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"backinstock/services/wishlist/app"
	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/edge"
	"backinstock/topics/events"
	"backinstock/topics/userdata"
)

// exportDoc is the export as the test reads it.
type exportDoc struct {
	UserID      string             `json:"user_id"`
	Wishlist    []json.RawMessage  `json:"wishlist"`
	Preferences events.Preferences `json:"preferences"`
	Devices     []events.Device    `json:"devices"`
	Notifier    struct {
		Sent []struct {
			Region         string `json:"region"`
			NotificationID string `json:"notification_id"`
		} `json:"sent"`
		Held []struct {
			Region       string          `json:"region"`
			Notification json.RawMessage `json:"notification"`
		} `json:"held"`
	} `json:"notifier"`
	Gateway struct {
		Deliveries []struct {
			State  string          `json:"state"`
			Marker json.RawMessage `json:"marker"`
		} `json:"deliveries"`
		Devices []struct {
			Devices map[string]string `json:"devices"`
		} `json:"devices"`
	} `json:"gateway"`
	Edge []struct {
		Subject      string          `json:"subject"`
		Notification json.RawMessage `json:"notification"`
	} `json:"edge"`
}

// personal is one user's data in every service: the test's fixture.
type personal struct {
	user, email, token string
	notifications      []events.Notification // one per region of the edge and the holds
}

// notification is a valid Notification of user: what the fan-out makes
// and the notifier holds and publishes.
func notification(user, sku, region, channel, contact string) events.Notification {
	return events.Notification{NotificationID: events.NotificationID(user, sku, region, 1, channel),
		RestockEventID: events.RestockEventID(sku, region, 1), UserID: user, SKU: sku, Region: region, Channel: channel,
		Episode: 1, Title: "Back in stock", Body: "It is back", URL: "https://shop.example.com/" + sku,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), Contact: contact}
}

// seed gives user data in every store: through the API (entries, a removed
// entry, preferences with contacts, a device), at the notifier's and the
// gateway's keys (topics/userdata, the builders their stores write with),
// a fan-out checkpoint whose cursor is the user, and the user's
// notifications on two regions' edge streams.
func seed(t *testing.T, c client, rdb redis.UniversalClient, js jetstream.JetStream, user string) personal {
	t.Helper()
	ctx := context.Background()
	p := personal{user: user, email: user + "@mail.example", token: "fcm-token-of-" + user}
	c.putEntry(user, "kettle", "us-east-1", "email", "app")
	c.putEntry(user, "teapot", "eu-west-1", "app")
	c.putEntry(user, "mug", "us-east-1", "email")
	if code := c.do("DELETE", "/v1/users/"+user+"/wishlist/mug", token, "", "", nil); code != 204 {
		t.Fatalf("remove entry: %d", code)
	}
	body := `{"channels":["email"],"time_zone":"Europe/Berlin","quiet_hours":{"start":"22:00","end":"07:00"},"contacts":{"email":"` + p.email + `"}}`
	if code := c.do("PUT", "/v1/users/"+user+"/preferences", token, "application/json", body, nil); code != 200 {
		t.Fatalf("PUT preferences: %d", code)
	}
	c.putDevice(user, "phone", `{"kind":"fcm","token":"`+p.token+`"}`)

	us := notification(user, "kettle", "us-east-1", events.ChannelEmail, p.email)
	eu := notification(user, "teapot", "eu-west-1", events.ChannelApp, "")
	held := notification(user, "kettle", "us-east-1", events.ChannelApp, "")
	legacy := notification(user, "mug", "us-east-1", events.ChannelEmail, p.email)
	p.notifications = []events.Notification{us, eu, held, legacy}
	pipe := rdb.Pipeline()
	// The notifier's sent markers, as its store writes them, and one it
	// wrote before the sets (a legacy key, erased and exported until the
	// last one expires).
	for _, n := range []events.Notification{us, eu} {
		key := userdata.NotifierSentSetKey(n.Region, n.SKU, n.Episode, n.Channel, userdata.SentShard(n.UserID))
		pipe.SAdd(ctx, key, n.UserID)
		pipe.Expire(ctx, key, time.Hour)
	}
	pipe.Set(ctx, userdata.LegacyNotifierSentKey(legacy.Region, user, legacy.NotificationID), "1", time.Hour)
	heldJSON, err := events.Encode(held)
	if err != nil {
		t.Fatal(err)
	}
	pipe.ZAdd(ctx, userdata.NotifierHeldKey("us-east-1"), redis.Z{Score: float64(time.Now().Add(time.Hour).UnixMilli()), Member: held.NotificationID})
	pipe.HSet(ctx, userdata.NotifierHeldDataKey("us-east-1"), held.NotificationID, heldJSON)
	pipe.Set(ctx, userdata.GatewayDeliveredKey("us-east-1", user, us.NotificationID),
		`{"provider":"smtp","provider_message_id":"<m1@mail>","attempt":1,"at":"2026-01-02T03:04:05Z"}`, time.Hour)
	pipe.Set(ctx, userdata.GatewayDeliveredKey("eu-west-1", user, eu.NotificationID), userdata.GatewayClaimPrefix+"0123abcd", time.Minute)
	pipe.HSet(ctx, userdata.GatewayDevicesKey("eu-west-1", user, eu.NotificationID), "phone", "projects/p/messages/1")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	st := store.New(rdb)
	if err := st.SaveCheckpoint(ctx, testenv.Unique(t, "ev"), "us-east-1", wishes.Checkpoint{Score: 1, Member: user, Users: 1}, time.Hour); err != nil {
		t.Fatal(err)
	}
	for _, n := range []events.Notification{us, eu} {
		publishEdge(t, js, n)
	}
	return p
}

func publishEdge(t *testing.T, js jetstream.JetStream, n events.Notification) {
	t.Helper()
	data, err := events.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	msg := &nats.Msg{Subject: edge.Subject(n.Region, n.Channel, n.UserID), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, n.NotificationID)
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatalf("publish to the edge: %v", err)
	}
}

// edgeStreams creates each region's edge stream as the notifier does
// (one stream per region, edge.<region>.>) on the package's NATS.
func edgeStreams(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range catalog.DefaultRegions {
		if err := testenv.CreateEdgeStreams(context.Background(), js, r); err != nil {
			t.Fatal(err)
		}
	}
	return js
}

// startServeLogged is startServe with the log observed at info level.
func startServeLogged(t *testing.T, cfg app.Config) (string, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.InfoLevel)
	addr := make(chan string, 1)
	cfg.OnListen = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunServe(ctx, cfg, zap.New(core), prometheus.NewRegistry()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a, logs
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not listen")
	}
	return "", nil
}

// redisMentions scans every key of Redis and reads every value by its type
// and returns the keys whose name or content contains any of needles.
func redisMentions(t *testing.T, rdb *redis.Client, needles ...string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	iter := rdb.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		key := iter.Val()
		var content []string
		typ, err := rdb.Type(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		switch typ {
		case "string":
			content = []string{rdb.Get(ctx, key).Val()}
		case "hash":
			for f, v := range rdb.HGetAll(ctx, key).Val() {
				content = append(content, f, v)
			}
		case "zset":
			content = rdb.ZRange(ctx, key, 0, -1).Val()
		case "set":
			content = rdb.SMembers(ctx, key).Val()
		case "list":
			content = rdb.LRange(ctx, key, 0, -1).Val()
		case "stream":
			for _, m := range rdb.XRange(ctx, key, "-", "+").Val() {
				content = append(content, m.ID, fmt.Sprint(m.Values))
			}
		case "none":
			continue // expired since the scan
		default:
			t.Fatalf("key %s has type %s the scan cannot read", key, typ)
		}
		all := key + "\x00" + strings.Join(content, "\x00")
		for _, n := range needles {
			if strings.Contains(all, n) {
				out = append(out, key)
				break
			}
		}
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// compacted reads the changelog end to end and keeps the last record per
// key: what compaction leaves.
func compacted(t *testing.T, cl sarama.Client) map[string][]byte {
	t.Helper()
	last := map[string][]byte{}
	testenv.ReadTopic(t, cl, catalog.WishlistChanges, func(m *sarama.ConsumerMessage) { last[string(m.Key)] = m.Value })
	return last
}

// liveRecords are the compacted changelog's records that mention a needle
// in their key or value and are not tombstones.
func liveRecords(last map[string][]byte, needles ...string) []string {
	var out []string
	for k, v := range last {
		for _, n := range needles {
			if v != nil && (strings.Contains(k, n) || strings.Contains(string(v), n)) {
				out = append(out, k)
				break
			}
		}
	}
	return out
}

// edgeCount is how many messages the region's edge streams hold on filter.
func edgeCount(t *testing.T, js jetstream.JetStream, region, filter string) uint64 {
	t.Helper()
	var n uint64
	for _, name := range edge.Streams(region) {
		st, err := js.Stream(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(context.Background(), jetstream.WithSubjectFilter(filter))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range info.State.Subjects {
			n += c
		}
	}
	return n
}

// TestExportAndErase: a user with wishlist entries, preferences with
// contacts, a device, the notifier's markers and a hold, the gateway's
// marker, claim and device progress, a checkpoint and notifications on
// two regions' edge streams; a neighbour with data in the same keys. The
// export (held to the OpenAPI document) lists all of it; after the
// erasure no Redis key or value, no live record of the compacted
// changelog and no edge message mentions the user or their contacts,
// while the neighbour keeps everything; the audit log line has counts and
// no id; a second erasure answers 204 and changes nothing.
func TestExportAndErase(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	n := env.NATS(t)
	js := edgeStreams(t, n.URL())
	cfg := baseConfig(t, kcfg, r.URL())
	cfg.NATSURL = n.URL()
	base, logs := startServeLogged(t, cfg)
	c := client{t: t, base: base}
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	cl := newClient(t, kcfg)

	user := testenv.Unique(t, "gdpr")
	// The neighbour's markers share the user's sets: the erasure must take
	// the user out of them and leave the neighbour in.
	other := testenv.Unique(t, "keep")
	for i := 0; userdata.SentShard(other) != userdata.SentShard(user); i++ {
		other = testenv.Unique(t, "keep") + "-" + strconv.Itoa(i)
	}
	alice := seed(t, c, rdb, js, user)
	bob := seed(t, c, rdb, js, other)

	var exp exportDoc
	if code := c.do("GET", "/v1/users/"+user+"/export", token, "", "", &exp); code != 200 {
		t.Fatalf("export: %d", code)
	}
	switch {
	case exp.UserID != user || len(exp.Wishlist) != 2:
		t.Fatalf("export: user %q, %d entries, want 2", exp.UserID, len(exp.Wishlist))
	case exp.Preferences.Contacts["email"] != alice.email || len(exp.Devices) != 1 || exp.Devices[0].Token != alice.token:
		t.Fatalf("export: contacts %v, devices %+v", exp.Preferences.Contacts, exp.Devices)
	case len(exp.Notifier.Sent) != 3 || len(exp.Notifier.Held) != 1 || !strings.Contains(string(exp.Notifier.Held[0].Notification), alice.notifications[2].NotificationID):
		t.Fatalf("export: notifier %+v", exp.Notifier)
	case len(exp.Gateway.Deliveries) != 2 || len(exp.Gateway.Devices) != 1 || exp.Gateway.Devices[0].Devices["phone"] == "":
		t.Fatalf("export: gateway %+v", exp.Gateway)
	case len(exp.Edge) != 2:
		t.Fatalf("export: %d edge messages, want 2", len(exp.Edge))
	}
	// The sets by key (eu-west-1's before us-east-1's), then the legacy key.
	for i, want := range []events.Notification{alice.notifications[1], alice.notifications[0], alice.notifications[3]} {
		if sent := exp.Notifier.Sent[i]; sent.NotificationID != want.NotificationID || sent.Region != want.Region {
			t.Fatalf("export: sent[%d] = %+v, want %s in %s", i, sent, want.NotificationID, want.Region)
		}
	}
	states := map[string]bool{}
	for _, d := range exp.Gateway.Deliveries {
		states[d.State] = true
		if d.State == "delivered" && !strings.Contains(string(d.Marker), "smtp") {
			t.Fatalf("export: delivered marker %s", d.Marker)
		}
	}
	if !states["claimed"] || !states["delivered"] {
		t.Fatalf("export: delivery states %v", states)
	}
	for _, e := range exp.Edge {
		if !strings.HasSuffix(e.Subject, "."+user) || !strings.Contains(string(e.Notification), user) {
			t.Fatalf("export: edge message %s %s", e.Subject, e.Notification)
		}
	}
	needles := []string{user, alice.email, alice.token}
	if got := redisMentions(t, rdb, needles...); len(got) == 0 {
		t.Fatal("the scan finds nothing of the user before the erasure: it cannot fail")
	}
	if live := liveRecords(compacted(t, cl), needles...); len(live) == 0 {
		t.Fatal("the changelog has no live record of the user before the erasure: the check cannot fail")
	}

	if code := c.do("DELETE", "/v1/users/"+user, token, "", "", nil); code != 204 {
		t.Fatalf("erase: %d", code)
	}

	if got := redisMentions(t, rdb, needles...); len(got) > 0 {
		t.Errorf("after the erasure Redis still mentions the user in %v", got)
	}
	last := compacted(t, cl)
	if live := liveRecords(last, needles...); len(live) > 0 {
		t.Errorf("after the erasure the compacted changelog has live records of the user: %v", live)
	}
	for _, k := range []string{events.WishlistKey(user, "kettle"), events.WishlistKey(user, "teapot"), events.PreferencesKey(user)} {
		if v, ok := last[k]; !ok || v != nil {
			t.Errorf("changelog key %s: present %v, value %q; want a tombstone", k, ok, v)
		}
	}
	for _, region := range catalog.DefaultRegions {
		if n := edgeCount(t, js, region, edge.UserFilter(user)); n != 0 {
			t.Errorf("edge %s still holds %d messages of the user", region, n)
		}
	}
	// The neighbour keeps everything.
	if got := redisMentions(t, rdb, bob.email); len(got) < 3 {
		t.Errorf("the neighbour's contact is left in %d keys, want the user hash and two items hashes", len(got))
	}
	for _, region := range []string{"us-east-1", "eu-west-1"} {
		if n := edgeCount(t, js, region, edge.UserFilter(other)); n != 1 {
			t.Errorf("edge %s holds %d messages of the neighbour, want 1", region, n)
		}
	}
	var bobExp exportDoc
	if code := c.do("GET", "/v1/users/"+other+"/export", token, "", "", &bobExp); code != 200 || len(bobExp.Wishlist) != 2 ||
		len(bobExp.Notifier.Held) != 1 || len(bobExp.Notifier.Sent) != 3 || len(bobExp.Gateway.Deliveries) != 2 || len(bobExp.Edge) != 2 {
		t.Errorf("the neighbour's export after the erasure: %d %+v", code, bobExp)
	}

	// The audit line: counts and the id's hash, no id or contact anywhere.
	audit := logs.FilterMessage("user erased").All()
	if len(audit) != 1 {
		t.Fatalf("%d audit lines, want 1", len(audit))
	}
	fields := audit[0].ContextMap()
	want := map[string]int64{"entries": 2, "preferences": 1, "tombstones": 3, "checkpoints": 1, "notifier_sent": 3,
		"notifier_held": 1, "gateway_delivered": 2, "gateway_devices": 1, "edge_messages": 2}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("audit %s = %v, want %d", k, fields[k], v)
		}
	}
	if h, _ := fields["user_hash"].(string); len(h) != 16 {
		t.Errorf("audit user_hash %q", fields["user_hash"])
	}
	for _, e := range logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, n := range needles {
			if strings.Contains(line, n) {
				t.Errorf("log line mentions the user: %s", line)
			}
		}
	}

	// The export after the erasure: empty, and still the documented shape.
	var empty exportDoc
	if code := c.do("GET", "/v1/users/"+user+"/export", token, "", "", &empty); code != 200 || len(empty.Wishlist)+len(empty.Devices)+
		len(empty.Notifier.Sent)+len(empty.Notifier.Held)+len(empty.Gateway.Deliveries)+len(empty.Gateway.Devices)+len(empty.Edge) != 0 {
		t.Errorf("export after the erasure: %d, not empty: %d entries, %d sent, %d held, %d deliveries, %d edge", code, len(empty.Wishlist), len(empty.Notifier.Sent), len(empty.Notifier.Held), len(empty.Gateway.Deliveries), len(empty.Edge))
	}

	// A second erasure: 204, and neither Redis, the changelog nor the edge changes.
	keysBefore := rdb.DBSize(context.Background()).Val()
	offsBefore := endOffsets(t, cl, catalog.WishlistChanges)
	if code := c.do("DELETE", "/v1/users/"+user, token, "", "", nil); code != 204 {
		t.Fatalf("second erase: %d", code)
	}
	if k, o := rdb.DBSize(context.Background()).Val(), endOffsets(t, cl, catalog.WishlistChanges); k != keysBefore || o != offsBefore {
		t.Errorf("second erasure changed Redis keys %d -> %d, changelog end %d -> %d", keysBefore, k, offsBefore, o)
	}
	if audit := logs.FilterMessage("user erased").All(); len(audit) != 2 || audit[1].ContextMap()["tombstones"] != int64(0) {
		t.Errorf("second audit line: %+v", audit)
	}
}

// TestEraseWithoutEdge: without NATS_URL the export and the erasure answer
// 503 edge_not_configured and change nothing (an erasure that cannot reach
// the edge would leave the user's notifications there).
func TestEraseWithoutEdge(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	cfg := baseConfig(t, kcfg, r.URL())
	c := client{t: t, base: startServe(t, cfg)}
	user := testenv.Unique(t, "noedge")
	c.putEntry(user, "kettle", "us-east-1", "email")
	cl := newClient(t, kcfg)
	before := endOffsets(t, cl, catalog.WishlistChanges)
	for _, req := range [][2]string{{"DELETE", "/v1/users/" + user}, {"GET", "/v1/users/" + user + "/export"}} {
		var e apiError
		if code := c.do(req[0], req[1], token, "", "", &e); code != 503 || e.Error.Code != "edge_not_configured" || !strings.Contains(e.Error.Message, "NATS_URL") {
			t.Errorf("%s %s: %d %+v", req[0], req[1], code, e)
		}
	}
	var list struct{ Items []json.RawMessage }
	if code := c.do("GET", "/v1/users/"+user+"/wishlist", token, "", "", &list); code != 200 || len(list.Items) != 1 {
		t.Errorf("the wishlist after a refused erasure: %d, %d items", code, len(list.Items))
	}
	if after := endOffsets(t, cl, catalog.WishlistChanges); after != before {
		t.Errorf("a refused erasure wrote %d changelog records", after-before)
	}
	var e apiError
	if code := c.do("DELETE", "/v1/users/bad.id", token, "", "", &e); code != 422 {
		t.Errorf("DELETE of a bad id: %d %+v", code, e)
	}
}
