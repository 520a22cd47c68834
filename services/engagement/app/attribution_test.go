package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"backinstock/services/engagement/app"
	"backinstock/services/engagement/internal/aggkeys"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

// attrEnv is one test's topics (clicks, delivery outcomes, orders, dead
// letters) on the shared kfake cluster, and a producer the test writes
// the touches with, as the engagement service and the gateways would.
type attrEnv struct {
	k                                   *testenv.Kafka
	clicks, status, orders, dlq, prefix string
	producer                            *kafka.Producer
}

func newAttrEnv(t *testing.T) *attrEnv {
	t.Helper()
	k := env.Kafka(t)
	e := &attrEnv{k: k, clicks: testenv.Unique(t, "clicks"), status: testenv.Unique(t, "status"), orders: testenv.Unique(t, "orders"),
		dlq: testenv.Unique(t, "dlq"), prefix: strings.ReplaceAll(testenv.Unique(t, "s"), ".", "-")}
	adm, err := kafka.NewClusterAdmin(kafka.Config{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range []string{e.clicks, e.status, e.orders, e.dlq} {
		if err := adm.CreateTopic(tp, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	adm.Close()
	e.producer, err = kafka.NewProducer(kafka.Config{Brokers: k.Brokers}, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.producer.Close() })
	return e
}

// sku is a SKU of this test only (the Redis is shared by the package).
func (e *attrEnv) sku(name string) string { return e.prefix + "-" + name }

func (e *attrEnv) produce(t *testing.T, topic, key string, value []byte, schema string) {
	t.Helper()
	msg := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value),
		Headers: kafka.RecordHeaders(events.Headers(schema, events.NewTraceparent()))}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.producer.SendAll(ctx, []*sarama.ProducerMessage{msg}); err != nil {
		t.Fatal(err)
	}
}

// click writes a click of the notification of sku to user on channel at at.
func (e *attrEnv) click(t *testing.T, user, sku, channel string, at time.Time) {
	t.Helper()
	nid := events.NotificationID(user, sku, "eu-west-1", 1, channel)
	c := events.ClickEvent{EventID: events.NewClickEventID(), Type: events.ClickTypeClicked, NotificationID: nid, UserID: user, SKU: sku,
		Region: "eu-west-1", Channel: channel, Episode: 1, URL: "https://shop.example/p/" + sku, At: at.UTC()}
	v, err := events.Encode(c)
	if err != nil {
		t.Fatal(err)
	}
	e.produce(t, e.clicks, nid, v, events.SchemaClickEvent)
}

// delivery writes an outcome of the notification of sku to user.
func (e *attrEnv) delivery(t *testing.T, user, sku, region, channel, status string, at time.Time) {
	t.Helper()
	nid := events.NotificationID(user, sku, region, 1, channel)
	d := events.DeliveryStatus{EventID: events.DeliveryEventID(nid, 1, status), NotificationID: nid, UserID: user, SKU: sku,
		Region: region, Channel: channel, Status: status, Provider: "smtp", Attempt: 1, At: at.UTC()}
	if status == events.StatusFailed {
		d.Reason = "550 no such user"
	}
	v, err := events.Encode(d)
	if err != nil {
		t.Fatal(err)
	}
	e.produce(t, e.status, nid, v, events.SchemaDeliveryStatus)
}

// running is one engagement service with the attribution group.
type running struct {
	base  string
	reg   *prometheus.Registry
	group string
	stop  func()
}

// run starts the service on e's topics against redisURL, its attribution
// in group.
func (e *attrEnv) run(t *testing.T, redisURL, group string) *running {
	t.Helper()
	r := &running{reg: prometheus.NewRegistry(), group: group}
	addr := make(chan string, 1)
	cfg := app.Config{
		Kafka: kafka.Config{Brokers: e.k.Brokers}, RedisURL: redisURL, HTTPAddr: "127.0.0.1:0",
		APIToken: token, ClickKeys: keysA, ClicksTopic: e.clicks, OrdersTopic: e.orders, StatusTopic: e.status,
		DeadLetterTopic: e.dlq, AttributionGroup: group, OnListen: func(a string) { addr <- a },
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx, cfg, zap.NewNop(), r.reg) }()
	select {
	case a := <-addr:
		r.base = "http://" + a
	case err := <-done:
		cancel()
		t.Fatalf("engagement did not listen: %v", err)
	}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(r.stop)
	return r
}

// caughtUp waits until the group has committed every record on the touch
// and order topics (their end offsets: the tests' records and the
// service's own).
func (e *attrEnv) caughtUp(t *testing.T, r *running) {
	t.Helper()
	want := map[string]int64{}
	cl := e.producer.Client()
	for _, tp := range []string{e.clicks, e.status, e.orders} {
		if err := cl.RefreshMetadata(tp); err != nil {
			t.Fatal(err)
		}
		parts, err := cl.Partitions(tp)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			end, err := cl.GetOffset(tp, p, sarama.OffsetNewest)
			if err != nil {
				t.Fatal(err)
			}
			want[tp] += end
		}
	}
	behind := func() string {
		for _, tp := range []string{e.clicks, e.status, e.orders} {
			if got := counter(t, r.reg, "backinstock_consumer_records_committed_total", r.group, tp); int64(got) != want[tp] {
				return fmt.Sprintf("%s: %v of %d records committed", tp, got, want[tp])
			}
		}
		return ""
	}
	deadline := time.Now().Add(60 * time.Second)
	for b := behind(); b != ""; b = behind() {
		if time.Now().After(deadline) {
			t.Fatalf("group %s not caught up within a minute: %s", r.group, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type line struct {
	SKU       string `json:"sku"`
	Quantity  int64  `json:"quantity"`
	UnitPrice string `json:"unit_price"`
}

func orderBody(id, user string, at time.Time, cur string, lines ...line) map[string]any {
	return map[string]any{"order_id": id, "user_id": user, "ordered_at": at.UTC().Format(time.RFC3339), "currency": cur, "lines": lines}
}

// post sends POST /v1/orders with body (a map, or raw bytes) and the
// token; it answers the status and the body.
func post(t *testing.T, base string, body any, withToken bool) (int, string) {
	t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/orders", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if withToken {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func mustPost(t *testing.T, base string, body any) {
	t.Helper()
	if code, b := post(t, base, body, true); code != http.StatusAccepted {
		t.Fatalf("POST /v1/orders: %d %s", code, b)
	}
}

// snapshot is every attribution hash of the test's SKUs and the index
// members naming them.
func (e *attrEnv) snapshot(t *testing.T, rdb redis.UniversalClient) map[string]map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]map[string]string{}
	keys, err := rdb.Keys(ctx, "engagement:attr:{"+e.prefix+"-*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		h, err := rdb.HGetAll(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		out[k] = h
	}
	members, err := rdb.SMembers(ctx, aggkeys.AttributionIndex).Result()
	if err != nil {
		t.Fatal(err)
	}
	idx := map[string]string{}
	for _, m := range members {
		if strings.HasPrefix(m, e.prefix+"-") {
			idx[m] = "1"
		}
	}
	out["index"] = idx
	return out
}

func redisClient(t *testing.T, url string) redis.UniversalClient {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opt)
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

func fields(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestOrdersAreAttributedDirectAssistedOrNot: the cases through
// POST /v1/orders and the touch topics: an order an hour after a click is
// direct (under the click's channel, not the earlier delivery's, and not
// also assisted); three days after a delivery without a click, assisted;
// eleven days after, nothing; a failed outcome is no touch; a click after
// the order earns nothing; the same order posted twice, and its record
// written again to the topic, counts once; a poison record is
// dead-lettered. The counters show the same.
func TestOrdersAreAttributedDirectAssistedOrNot(t *testing.T) {
	e := newAttrEnv(t)
	rurl := env.Redis(t).URL()
	rdb := redisClient(t, rurl)
	s := e.run(t, rurl, testenv.Unique(t, "attribution"))
	t0 := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	a, b, c, d, f := e.sku("a"), e.sku("b"), e.sku("c"), e.sku("d"), e.sku("f")

	e.delivery(t, "u1", a, "eu-west-1", "sms", events.StatusDelivered, t0.Add(-2*time.Hour))
	e.click(t, "u1", a, "email", t0)
	e.delivery(t, "u2", b, "us-east-1", "app", events.StatusDelivered, t0)
	e.delivery(t, "u3", c, "eu-west-1", "email", events.StatusDelivered, t0)
	e.delivery(t, "u4", d, "eu-west-1", "email", events.StatusFailed, t0)
	e.click(t, "u5", f, "web", t0.Add(2*time.Hour)) // after the order below

	direct := orderBody(e.prefix+"-o-1", "u1", t0.Add(time.Hour), "EUR", line{a, 2, "19.99"})
	mustPost(t, s.base, direct)
	mustPost(t, s.base, direct) // the shop's retry
	mustPost(t, s.base, orderBody(e.prefix+"-o-2", "u2", t0.Add(72*time.Hour), "USD", line{b, 1, "5"}, line{c, 1, "3.50"}))
	mustPost(t, s.base, orderBody(e.prefix+"-o-3", "u3", t0.Add(11*24*time.Hour), "EUR", line{c, 1, "7"}))
	mustPost(t, s.base, orderBody(e.prefix+"-o-4", "u4", t0.Add(time.Hour), "EUR", line{d, 1, "7"}))
	mustPost(t, s.base, orderBody(e.prefix+"-o-5", "u5", t0.Add(time.Hour), "JPY", line{f, 3, "1500"}))
	// The order's record written again (a crash before the marker): one order still.
	o1, _ := events.Encode(events.Order{OrderID: e.prefix + "-o-1", UserID: "u1", OrderedAt: t0.Add(time.Hour), Currency: "EUR",
		Lines: []events.OrderLine{{SKU: a, Quantity: 2, UnitPrice: "19.99"}}})
	e.produce(t, e.orders, e.prefix+"-o-1", o1, events.SchemaOrder)
	e.produce(t, e.orders, "o-9", []byte(`{"order_id":"o-9","lines":"no"}`), events.SchemaOrder) // poison

	e.caughtUp(t, s)
	day := aggkeys.Day(t0)
	want := map[string]map[string]string{
		aggkeys.Attribution(a, "eu-west-1", "email", day):                             fields(aggkeys.DirectOrders, "1", aggkeys.DirectUnits, "2", aggkeys.DirectRevenue("EUR"), "3998"),
		aggkeys.Attribution(b, "us-east-1", "app", aggkeys.Day(t0.Add(72*time.Hour))): fields(aggkeys.AssistedOrders, "1", aggkeys.AssistedUnits, "1", aggkeys.AssistedRevenue("USD"), "500"),
		"index": fields(aggkeys.IndexMember(a, "eu-west-1", "email"), "1", aggkeys.IndexMember(b, "us-east-1", "app"), "1"),
	}
	got := e.snapshot(t, rdb)
	if !equalHashes(got, want) {
		t.Fatalf("attribution\n got %v\nwant %v", got, want)
	}
	if v := counter(t, s.reg, "backinstock_engagement_order_lines_total"); v != 6 {
		t.Errorf("order lines counted %v, want 6 (o-1 once, o-2 twice, o-3, o-4, o-5)", v)
	}
	if v := counter(t, s.reg, "backinstock_engagement_orders_received_total"); v != 5 {
		t.Errorf("orders received %v, want 5 (the retry not counted)", v)
	}
	if v := counter(t, s.reg, "backinstock_engagement_attributed_orders_total", "email", "direct", "eu-west-1"); v != 1 {
		t.Errorf("direct email orders %v, want 1", v)
	}
	if v := counter(t, s.reg, "backinstock_engagement_attributed_revenue_total", "app", "USD", "assisted", "us-east-1"); v != 5 {
		t.Errorf("assisted app revenue %v, want 5 (major units)", v)
	}
	if v := counter(t, s.reg, "backinstock_consumer_dead_letters_total", s.group, e.orders); v != 1 {
		t.Errorf("dead letters %v, want 1", v)
	}
}

// equalHashes compares two snapshots: the hashes exactly, the index as
// holding at least the wanted members (a bucket a line moved out of stays
// listed: readers take its missing hash as zeros).
func equalHashes(got, want map[string]map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		if k == "index" {
			for m := range w {
				if got[k][m] == "" {
					return false
				}
			}
			continue
		}
		if !maps.Equal(got[k], w) {
			return false
		}
	}
	return true
}

// TestOrderBeforeItsClickEndsDirect: the order is read before the click
// that earned it (the click written late, as a lagging partition or a
// rebuild would present it) and before a delivery: it is first not
// attributed, then assisted, then direct, and the hashes hold only the
// direct line; replaying every topic from the beginning (a fresh group)
// changes nothing, and a rebuild into an empty Redis gives the same
// hashes.
func TestOrderBeforeItsClickEndsDirect(t *testing.T) {
	e := newAttrEnv(t)
	rurl := env.Redis(t).URL()
	rdb := redisClient(t, rurl)
	s := e.run(t, rurl, testenv.Unique(t, "attribution"))
	t0 := time.Date(2026, 11, 25, 23, 30, 0, 0, time.UTC)
	a, b := e.sku("a"), e.sku("b")
	mustPost(t, s.base, orderBody(e.prefix+"-o-1", "u1", t0, "EUR", line{a, 1, "10"}, line{b, 4, "0.25"}))
	e.caughtUp(t, s)
	if got := e.snapshot(t, rdb); len(got) != 1 || len(got["index"]) != 0 {
		t.Fatalf("before any touch: %v", got)
	}

	e.delivery(t, "u1", a, "us-east-1", "sms", events.StatusDelivered, t0.Add(-48*time.Hour))
	e.delivery(t, "u1", b, "us-east-1", "app", events.StatusDelivered, t0.Add(-time.Hour))
	e.caughtUp(t, s)
	assisted := aggkeys.Attribution(a, "us-east-1", "sms", aggkeys.Day(t0))
	if got := e.snapshot(t, rdb)[assisted]; !maps.Equal(got, fields(aggkeys.AssistedOrders, "1", aggkeys.AssistedUnits, "1", aggkeys.AssistedRevenue("EUR"), "1000")) {
		t.Fatalf("after the delivery: %s = %v", assisted, got)
	}

	e.click(t, "u1", a, "email", t0.Add(-23*time.Hour)) // within the day before the order
	e.caughtUp(t, s)
	want := map[string]map[string]string{
		aggkeys.Attribution(a, "eu-west-1", "email", aggkeys.Day(t0)): fields(aggkeys.DirectOrders, "1", aggkeys.DirectUnits, "1", aggkeys.DirectRevenue("EUR"), "1000"),
		aggkeys.Attribution(b, "us-east-1", "app", aggkeys.Day(t0)):   fields(aggkeys.AssistedOrders, "1", aggkeys.AssistedUnits, "4", aggkeys.AssistedRevenue("EUR"), "100"),
		// The bucket the line left stays in the index (readers take a
		// missing hash as zeros); its hash is gone.
		"index": fields(aggkeys.IndexMember(a, "eu-west-1", "email"), "1", aggkeys.IndexMember(a, "us-east-1", "sms"), "1", aggkeys.IndexMember(b, "us-east-1", "app"), "1"),
	}
	live := e.snapshot(t, rdb)
	if !equalHashes(live, want) {
		t.Fatalf("after the late click\n got %v\nwant %v", live, want)
	}
	if v := counter(t, s.reg, "backinstock_engagement_attributed_orders_total", "email", "direct", "eu-west-1"); v != 1 {
		t.Errorf("direct email orders %v, want 1", v)
	}
	s.stop()

	// Replay: a fresh group reads every topic from the beginning into the
	// same Redis.
	replay := e.run(t, rurl, testenv.Unique(t, "replay"))
	e.caughtUp(t, replay)
	if got := e.snapshot(t, rdb); !equalHashes(got, live) || len(got["index"]) != len(live["index"]) {
		t.Fatalf("after the replay\n got %v\nwant %v", got, live)
	}
	if v := counter(t, replay.reg, "backinstock_engagement_order_lines_total"); v != 0 {
		t.Errorf("the replay counted %v order lines again", v)
	}
	replay.stop()

	// Rebuild: an empty Redis, a fresh group.
	empty, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(empty.Close)
	rebuilt := e.run(t, empty.URL(), testenv.Unique(t, "rebuild"))
	e.caughtUp(t, rebuilt)
	got := e.snapshot(t, redisClient(t, empty.URL()))
	// The bucket the line left may or may not be listed, as the topics
	// interleave.
	delete(want["index"], aggkeys.IndexMember(a, "us-east-1", "sms"))
	if !equalHashes(got, want) {
		t.Fatalf("after the rebuild\n got %v\nwant %v", got, want)
	}
}
