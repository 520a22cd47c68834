package app_test

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"backinstock/services/engagement/app"
	"backinstock/services/engagement/internal/aggkeys"
	"backinstock/services/engagement/internal/reports"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/clicklink"
	"backinstock/topics/events"
)

const region = "eu-west-1"

// reportFixture is the engagement service with its report consumer on
// topics of the test's own, in a Redis database of its own (the tests
// flush it), with a producer that stands for the other services.
type reportFixture struct {
	*service
	topics reports.Topics
	group  string
	db     int
	prod   *kafka.Producer
	// sent is every record produced, to produce again (a replay).
	sent []*sarama.ProducerMessage
}

func startReports(t *testing.T, db int) *reportFixture {
	t.Helper()
	k := env.Kafka(t)
	f := &reportFixture{db: db, group: testenv.Unique(t, "engagement-reports")}
	f.topics = reports.Topics{
		DeliveryStatus: testenv.Unique(t, "delivery.status"), Restock: testenv.Unique(t, "inventory.restock"),
		Stock: testenv.Unique(t, "inventory.stock"), WishlistChanges: testenv.Unique(t, "wishlist.changes"),
	}
	adm, err := kafka.NewClusterAdmin(kafka.Config{Brokers: k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{f.topics.DeliveryStatus, f.topics.Restock, f.topics.Stock, f.topics.WishlistChanges} {
		if err := adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	adm.Close()
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(env.Redis(t).URL(), "/0"), "redis://"), DB: db})
	if err := rdb.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	rdb.Close()
	f.run(t)
	if f.prod, err = kafka.NewProducer(kafka.Config{Brokers: k.Brokers}, kafka.ProducerOptions{}, zap.NewNop()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.prod.Close() })
	return f
}

// run starts (or starts again) the service on the fixture's topics, group
// and database.
func (f *reportFixture) run(t *testing.T) {
	t.Helper()
	clicks := ""
	if f.service != nil {
		clicks = f.service.topic
	}
	f.service = start(t, f.configure(clicks))
	f.topics.Clicks = f.service.topic
}

func (f *reportFixture) configure(clicks string) func(*app.Config) {
	return func(c *app.Config) {
		if clicks != "" {
			c.ClicksTopic = clicks
		}
		c.ReportTopics = f.topics
		c.ReportTopics.Clicks = c.ClicksTopic
		c.ReportsGroup = f.group
		c.RedisURL = strings.TrimSuffix(c.RedisURL, "/0") + fmt.Sprintf("/%d", f.db)
	}
}

func (f *reportFixture) redis(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: strings.TrimPrefix(strings.TrimSuffix(env.Redis(t).URL(), "/0"), "redis://"), DB: f.db})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// produce writes records as the other services do (value nil: a tombstone).
func (f *reportFixture) produce(t *testing.T, msgs ...*sarama.ProducerMessage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.prod.SendAll(ctx, msgs); err != nil {
		t.Fatal(err)
	}
	f.sent = append(f.sent, msgs...)
}

func record(t *testing.T, topic, key string, v interface{ Validate() error }) *sarama.ProducerMessage {
	t.Helper()
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key)}
	if v != nil {
		b, err := events.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		m.Value = sarama.ByteEncoder(b)
	}
	return m
}

func (f *reportFixture) wish(t *testing.T, user, sku string, at time.Time, channels ...string) *sarama.ProducerMessage {
	if len(channels) == 0 {
		return record(t, f.topics.WishlistChanges, events.WishlistKey(user, sku), nil)
	}
	return record(t, f.topics.WishlistChanges, events.WishlistKey(user, sku), events.WishlistChange{UserID: user, SKU: sku, Region: region, Channels: channels, Op: events.OpAdd, At: at})
}

func (f *reportFixture) stock(t *testing.T, sku string, qty, episode int64, at time.Time) *sarama.ProducerMessage {
	return record(t, f.topics.Stock, events.StockKey(sku, region), events.StockLevel{SKU: sku, Region: region, Quantity: qty, Episode: episode, At: at})
}

func (f *reportFixture) restock(t *testing.T, sku string, episode int64, at time.Time) *sarama.ProducerMessage {
	return record(t, f.topics.Restock, sku, events.RestockEvent{EventID: events.RestockEventID(sku, region, episode), SKU: sku, Region: region,
		Quantity: 5, Episode: episode, OccurredAt: at})
}

func (f *reportFixture) status(t *testing.T, user, sku, channel, status string, attempt int, at time.Time) *sarama.ProducerMessage {
	nid := events.NotificationID(user, sku, region, 1, channel)
	d := events.DeliveryStatus{EventID: events.DeliveryEventID(nid, attempt, status), NotificationID: nid, UserID: user, SKU: sku, Region: region,
		Channel: channel, Status: status, Provider: "smtp", Attempt: attempt, At: at}
	if status != events.StatusSent && status != events.StatusDelivered && status != events.StatusQueued {
		d.Reason = "test"
	}
	return record(t, f.topics.DeliveryStatus, nid, d)
}

// click follows the notification's tracked link, as a mail client does.
func (f *reportFixture) click(t *testing.T, user, sku, channel string) {
	t.Helper()
	u := f.url(t, clicklink.Link{UserID: user, SKU: sku, Region: region, Channel: channel, Episode: 1,
		URL: "https://shop.example/p/" + sku, Expires: f.now.Load().Add(24 * time.Hour)})
	if resp, _ := get(t, u); resp.StatusCode != http.StatusFound {
		t.Fatalf("click of %s %s %s: %d", user, sku, channel, resp.StatusCode)
	}
}

// caughtUp waits until the report group has committed every record of its
// topics: what they hold is in the aggregates.
func (f *reportFixture) caughtUp(t *testing.T) {
	t.Helper()
	cl, err := kafka.NewClient(kafka.Config{Brokers: f.k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool {
		offs, err := kafka.Committed(adm, f.group, nil)
		if err != nil {
			return false
		}
		for _, topic := range f.topics.List() {
			parts, err := cl.Partitions(topic)
			if err != nil {
				return false
			}
			for _, p := range parts {
				end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil {
					return false
				}
				if got, _ := offs.Get(topic, p); end > 0 && got < end {
					return false
				}
			}
		}
		return true
	}, "group %s did not catch up", f.group)
}

// getReport reads a report route; accept is the Accept header ("" for none).
func (f *reportFixture) getReport(t *testing.T, pathQuery, accept string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.base+pathQuery, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), string(b)
}

func (f *reportFixture) performance(t *testing.T, query string) []reports.Row {
	t.Helper()
	code, _, body := f.getReport(t, "/v1/reports/performance?"+query, "")
	if code != http.StatusOK {
		t.Fatalf("performance %s: %d %s", query, code, body)
	}
	var rep struct{ Rows []reports.Row }
	if err := decodeJSON(strings.NewReader(body), &rep); err != nil {
		t.Fatal(err)
	}
	return rep.Rows
}

func ratio(a, b int64) *float64 {
	v := float64(a) / float64(b)
	return &v
}

// scenario is the scripted sequence of TestReportNumbersEqualTheScenario:
// five wishlisters of one SKU (one leaves), ten delivery outcomes on two
// channels (with a redelivered one and a late receipt), then the restock
// (read after its deliveries, as a consumer with a backlog may), four
// clicks through the real links, two attributed orders.
type scenario struct {
	sku string
	t0  time.Time
}

func (sc scenario) records(t *testing.T, f *reportFixture) []*sarama.ProducerMessage {
	sku, t0 := sc.sku, sc.t0
	email, app := events.ChannelEmail, events.ChannelApp
	sec := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
	return []*sarama.ProducerMessage{
		f.wish(t, "u1", sku, t0.Add(-3*time.Hour), email, app), f.wish(t, "u2", sku, t0.Add(-3*time.Hour), app, email),
		f.wish(t, "u3", sku, t0.Add(-3*time.Hour), email, app), f.wish(t, "u4", sku, t0.Add(-3*time.Hour), email),
		f.wish(t, "u5", sku, t0.Add(-3*time.Hour), email), f.wish(t, "u5", sku, time.Time{}), // u5 leaves
		f.wish(t, "u4", sku, t0.Add(-3*time.Hour), email), // the same entry again: no change
		f.stock(t, sku, 0, 0, t0.Add(-time.Hour)), f.stock(t, sku, 5, 1, t0),
		f.status(t, "u1", sku, email, events.StatusSent, 1, sec(2)),
		f.status(t, "u2", sku, email, events.StatusSent, 1, sec(4)),
		f.status(t, "u3", sku, email, events.StatusSent, 1, sec(6)),
		f.status(t, "u3", sku, email, events.StatusDelivered, 1, sec(60)), // a later receipt: delivered once
		f.status(t, "u3", sku, email, events.StatusSent, 1, sec(6)),       // written twice by a gateway
		f.status(t, "u4", sku, email, events.StatusFailed, 1, sec(3)),
		f.status(t, "u1", sku, app, events.StatusQueued, 1, sec(1)),
		f.status(t, "u1", sku, app, events.StatusDelivered, 1, sec(8)),
		f.status(t, "u2", sku, app, events.StatusSuppressed, 1, sec(5)),
		f.status(t, "u3", sku, app, events.StatusDelivered, 1, sec(10)),
	}
}

// attribution writes the attributed orders as the attribution consumer
// does (aggkeys' layout: the contract between the two).
func (sc scenario) attribution(t *testing.T, rdb *redis.Client) {
	t.Helper()
	ctx := context.Background()
	key := aggkeys.Attribution(sc.sku, region, events.ChannelEmail, aggkeys.Day(sc.t0))
	if err := rdb.HSet(ctx, key, aggkeys.DirectOrders, 1, aggkeys.DirectUnits, 2, aggkeys.DirectRevenue("EUR"), 5998,
		aggkeys.AssistedOrders, 1, aggkeys.AssistedUnits, 1, aggkeys.AssistedRevenue("EUR"), 2999, aggkeys.AssistedRevenue("USD"), 1500).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.SAdd(ctx, aggkeys.AttributionIndex, aggkeys.IndexMember(sc.sku, region, events.ChannelEmail)).Err(); err != nil {
		t.Fatal(err)
	}
}

// want is the scenario's ground truth.
func (sc scenario) want() (byChannel, bySKU []reports.Row, lag reports.LagPoint) {
	email := reports.Row{SKU: sc.sku, Region: region, Channel: events.ChannelEmail, Waiting: 4, Restocks: 1, Notified: 4, Delivered: 3, Failed: 1,
		Clicks: 3, UniqueClicks: 2, DirectOrders: 1, DirectUnits: 2, AssistedOrders: 1, AssistedUnits: 1,
		DirectRevenue: map[string]int64{"EUR": 5998}, AssistedRevenue: map[string]int64{"EUR": 2999, "USD": 1500},
		ClickThroughRate: ratio(2, 3), ConversionRate: ratio(2, 3)}
	app := reports.Row{SKU: sc.sku, Region: region, Channel: events.ChannelApp, Waiting: 3, Restocks: 1, Notified: 3, Delivered: 2, Unsubscribed: 1,
		Clicks: 1, UniqueClicks: 1, DirectRevenue: map[string]int64{}, AssistedRevenue: map[string]int64{},
		ClickThroughRate: ratio(1, 2), ConversionRate: ratio(0, 1)}
	all := reports.Row{SKU: sc.sku, Waiting: 4, Restocks: 1, Notified: 7, Delivered: 5, Failed: 1, Unsubscribed: 1,
		Clicks: 4, UniqueClicks: 3, DirectOrders: 1, DirectUnits: 2, AssistedOrders: 1, AssistedUnits: 1,
		DirectRevenue: map[string]int64{"EUR": 5998}, AssistedRevenue: map[string]int64{"EUR": 2999, "USD": 1500},
		ClickThroughRate: ratio(3, 5), ConversionRate: ratio(2, 5)}
	// Delivered 2, 4, 6 s (email) and 8, 10 s (app) after the restock.
	lag = reports.LagPoint{Hour: sc.t0.Truncate(time.Hour), Count: 5, AvgMS: 6000, MaxMS: 10000}
	return []reports.Row{app, email}, []reports.Row{all}, lag
}

// check compares every report of the scenario with its ground truth.
func (sc scenario) check(t *testing.T, f *reportFixture) {
	t.Helper()
	byChannel, bySKU, lag := sc.want()
	if got := f.performance(t, "sku="+sc.sku); !reflect.DeepEqual(got, byChannel) {
		t.Errorf("performance by channel:\n got %s\nwant %s", rowsString(got), rowsString(byChannel))
	}
	if got := f.performance(t, "sku="+sc.sku+"&group_by=sku"); !reflect.DeepEqual(got, bySKU) {
		t.Errorf("performance by sku:\n got %s\nwant %s", rowsString(got), rowsString(bySKU))
	}
	if got := f.performance(t, "sku="+sc.sku+"&channel=sms"); len(got) != 0 {
		t.Errorf("performance of sms: %s, want no rows", rowsString(got))
	}

	// CSV, asked for both ways: the same numbers.
	wantCSV := [][]string{
		{"sku", "region", "channel", "waiting", "restocks", "notified", "delivered", "failed", "unsubscribed", "clicks", "unique_clicks",
			"direct_orders", "direct_units", "assisted_orders", "assisted_units", "direct_revenue_EUR", "direct_revenue_USD",
			"assisted_revenue_EUR", "assisted_revenue_USD", "click_through_rate", "conversion_rate"},
		{sc.sku, region, "app", "3", "1", "3", "2", "0", "1", "1", "1", "0", "0", "0", "0", "0", "0", "0", "0", "0.5", "0"},
		{sc.sku, region, "email", "4", "1", "4", "3", "1", "0", "3", "2", "1", "2", "1", "1", "5998", "0", "2999", "1500",
			fmt.Sprint(2.0 / 3), fmt.Sprint(2.0 / 3)},
	}
	for _, ask := range []struct{ query, accept string }{{"&format=csv", ""}, {"", "text/csv"}} {
		code, ctype, body := f.getReport(t, "/v1/reports/performance?sku="+sc.sku+ask.query, ask.accept)
		got, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if code != http.StatusOK || !strings.HasPrefix(ctype, "text/csv") || err != nil || !reflect.DeepEqual(got, wantCSV) {
			t.Errorf("performance csv (%q, Accept %q): %d %s %v\n got %q\nwant %q", ask.query, ask.accept, code, ctype, err, got, wantCSV)
		}
	}

	code, _, body := f.getReport(t, "/v1/reports/lag?sku="+sc.sku, "")
	var l struct {
		Points    []reports.LagPoint
		Unmatched int64
	}
	if err := decodeJSON(strings.NewReader(body), &l); code != http.StatusOK || err != nil {
		t.Fatalf("lag: %d %v %s", code, err, body)
	}
	if len(l.Points) != 1 || !l.Points[0].Hour.Equal(lag.Hour) || l.Points[0].Count != lag.Count || l.Points[0].AvgMS != lag.AvgMS ||
		l.Points[0].MaxMS != lag.MaxMS || l.Unmatched != 0 {
		t.Errorf("lag %+v unmatched %d, want [%+v] and 0", l.Points, l.Unmatched, lag)
	}
}

func rowsString(rows []reports.Row) string {
	var b strings.Builder
	for _, r := range rows {
		ctr, conv := "nil", "nil"
		if r.ClickThroughRate != nil {
			ctr = fmt.Sprint(*r.ClickThroughRate)
		}
		if r.ConversionRate != nil {
			conv = fmt.Sprint(*r.ConversionRate)
		}
		r.ClickThroughRate, r.ConversionRate = nil, nil
		fmt.Fprintf(&b, "\n  %+v ctr=%s conv=%s", r, ctr, conv)
	}
	return b.String()
}

// TestReportNumbersEqualTheScenario: the performance and lag reports of a
// scripted scenario (wishlisters, a restock, delivery outcomes, clicks
// through the real links, attributed orders in aggkeys' layout) equal its
// ground truth exactly, in JSON and CSV; producing every record again (a
// redelivery or replay of each topic) changes nothing; `engagement
// rebuild` into an emptied Redis gives the same numbers.
func TestReportNumbersEqualTheScenario(t *testing.T) {
	f := startReports(t, 3)
	now := *f.now.Load()
	sc := scenario{sku: testenv.Unique(t, "sku"), t0: now.Add(-2 * time.Hour).Truncate(time.Hour).Add(10 * time.Minute)}
	f.produce(t, sc.records(t, f)...)
	f.caughtUp(t)
	// The deliveries came before their restock: no lag yet, five waiting for it.
	code, _, body := f.getReport(t, "/v1/reports/lag?sku="+sc.sku, "")
	if code != http.StatusOK || !strings.Contains(body, `"points":[]`) || !strings.Contains(body, `"unmatched":5`) {
		t.Errorf("lag before the restock: %d %s, want no points and 5 unmatched", code, body)
	}
	f.produce(t, f.restock(t, sc.sku, 1, sc.t0))
	f.click(t, "u1", sc.sku, events.ChannelEmail)
	f.click(t, "u1", sc.sku, events.ChannelEmail)
	f.click(t, "u2", sc.sku, events.ChannelEmail)
	f.click(t, "u1", sc.sku, events.ChannelApp)
	rdb := f.redis(t)
	sc.attribution(t, rdb)
	f.caughtUp(t)
	sc.check(t, f)

	t.Run("replay changes nothing", func(t *testing.T) {
		// Every record again, the click events too, as a replay from the
		// beginning or a redelivery after a crash would hand them.
		cl, err := kafka.NewClient(kafka.Config{Brokers: f.k.Brokers})
		if err != nil {
			t.Fatal(err)
		}
		var again []*sarama.ProducerMessage
		testenv.ReadTopic(t, cl, f.topics.Clicks, func(m *sarama.ConsumerMessage) {
			again = append(again, &sarama.ProducerMessage{Topic: m.Topic, Key: sarama.ByteEncoder(m.Key), Value: sarama.ByteEncoder(m.Value)})
		})
		cl.Close()
		if len(again) != 4 {
			t.Fatalf("%d click events, want 4", len(again))
		}
		for _, m := range f.sent {
			again = append(again, &sarama.ProducerMessage{Topic: m.Topic, Key: m.Key, Value: m.Value})
		}
		f.produce(t, again...)
		f.caughtUp(t)
		sc.check(t, f)
	})

	t.Run("rebuild into an emptied Redis", func(t *testing.T) {
		f.stop()
		if err := rdb.FlushDB(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		sc.attribution(t, rdb) // the attribution consumer's own share, rebuilt by it
		cfg := f.cfg
		res, err := app.RunRebuild(context.Background(), cfg, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		// Every record produced here, and the service's own 4 click events.
		if want := int64(len(f.sent) + 4); res.Records != want || res.Rejected != 0 {
			t.Errorf("rebuild read %+v, want %d records", res, want)
		}
		f.run(t)
		sc.check(t, f)
	})
}

// TestRebuildRefusesWhileTheGroupRuns: a rebuild with the report consumer
// still running would race it; it is refused, nothing wiped.
func TestRebuildRefusesWhileTheGroupRuns(t *testing.T) {
	f := startReports(t, 4)
	f.produce(t, f.restock(t, testenv.Unique(t, "sku"), 1, time.Now()))
	f.caughtUp(t)
	_, err := app.RunRebuild(context.Background(), f.cfg, zap.NewNop())
	if err == nil || !strings.Contains(err.Error(), "stop `engagement run` first") {
		t.Fatalf("rebuild with the group running: %v", err)
	}
	keys, _ := f.redis(t).Keys(context.Background(), aggkeys.ReportPrefix+"*").Result()
	if len(keys) == 0 {
		t.Errorf("the refused rebuild wiped the aggregates")
	}
}

// TestDemandRanksSoldOutSKUs: sold-out SKUs rank by waiting wishlisters,
// ties by the longest sold out; a 0 after a 0 keeps the first time; a
// restocked SKU leaves the ranking; CSV says the same.
func TestDemandRanksSoldOutSKUs(t *testing.T) {
	f := startReports(t, 5)
	now := *f.now.Load()
	at := func(h float64) time.Time { return now.Add(time.Duration(h * float64(time.Hour))) }
	sku := func(s string) string { return testenv.Unique(t, s) }
	a, b, c, d, e := sku("a"), sku("b"), sku("c"), sku("d"), sku("e")
	email := events.ChannelEmail
	f.produce(t,
		// a: in stock with 5 waiting: not in the ranking.
		f.stock(t, a, 3, 1, at(-5)),
		f.wish(t, "w1", a, at(-9), email), f.wish(t, "w2", a, at(-9), email), f.wish(t, "w3", a, at(-9), email),
		f.wish(t, "w4", a, at(-9), email), f.wish(t, "w5", a, at(-9), email),
		// b: 2 waiting (one on two channels: one person), sold out 2 h ago, 0 again 30 min ago.
		f.stock(t, b, 0, 0, at(-2)), f.stock(t, b, 0, 0, at(-0.5)),
		f.wish(t, "w1", b, at(-9), email, events.ChannelSMS), f.wish(t, "w2", b, at(-9), email),
		// c: 1 waiting, sold out 3 h ago.
		f.stock(t, c, 0, 0, at(-3)), f.wish(t, "w1", c, at(-9), email),
		// d: 3 waiting (a fourth left), sold out 1 h ago.
		f.stock(t, d, 0, 0, at(-1)),
		f.wish(t, "w1", d, at(-9), email), f.wish(t, "w2", d, at(-9), email), f.wish(t, "w3", d, at(-9), email),
		f.wish(t, "w4", d, at(-9), email), f.wish(t, "w4", d, time.Time{}),
		// e: 1 waiting, sold out 1 h ago (after c: ranks after it).
		f.stock(t, e, 4, 1, at(-6)), f.stock(t, e, 0, 1, at(-1)), f.wish(t, "w1", e, at(-9), email),
	)
	f.caughtUp(t)
	type entry struct {
		sku     string
		waiting int64
		since   time.Time
	}
	check := func(want []entry) {
		t.Helper()
		code, _, body := f.getReport(t, "/v1/reports/demand?region="+region, "")
		var rep struct{ SKUs []reports.Demand }
		if err := decodeJSON(strings.NewReader(body), &rep); code != http.StatusOK || err != nil {
			t.Fatalf("demand: %d %v %s", code, err, body)
		}
		var got []entry
		for _, x := range rep.SKUs {
			got = append(got, entry{x.SKU, x.Waiting, x.SoldOutSince})
			if x.Region != region || x.SoldOutSeconds != int64(now.Sub(x.SoldOutSince)/time.Second) {
				t.Errorf("demand entry %+v: region or sold_out_seconds wrong (now %s)", x, now)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("demand:\n got %+v\nwant %+v", got, want)
		}
		code, _, body = f.getReport(t, "/v1/reports/demand?format=csv", "")
		recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
		if code != http.StatusOK || err != nil || len(recs) != len(want)+1 {
			t.Fatalf("demand csv: %d %v %q", code, err, recs)
		}
		for i, w := range want {
			if r := recs[i+1]; r[0] != fmt.Sprint(i+1) || r[1] != w.sku || r[3] != fmt.Sprint(w.waiting) {
				t.Errorf("demand csv line %d: %q, want rank %d %s waiting %d", i+1, r, i+1, w.sku, w.waiting)
			}
		}
	}
	check([]entry{{d, 3, at(-1)}, {b, 2, at(-2)}, {c, 1, at(-3)}, {e, 1, at(-1)}})

	// b is restocked: it leaves the ranking.
	f.produce(t, f.stock(t, b, 4, 1, at(-0.1)))
	f.caughtUp(t)
	check([]entry{{d, 3, at(-1)}, {c, 1, at(-3)}, {e, 1, at(-1)}})
}

// TestReportQueryErrors: bad query parameters are a 400 naming the
// parameter; the reports need the token.
func TestReportQueryErrors(t *testing.T) {
	f := startReports(t, 6)
	for q, want := range map[string]string{
		"/v1/reports/performance?from=2026-13-01":               "from: must be a UTC date",
		"/v1/reports/performance?to=yesterday":                  "to: must be a UTC date",
		"/v1/reports/performance?from=2026-12-02&to=2026-12-01": "from: 2026-12-02 is after to",
		"/v1/reports/performance?from=2020-01-01&to=2026-12-01": "from: the range is",
		"/v1/reports/performance?sku=a.b":                       "sku: must match",
		"/v1/reports/performance?region=Mars":                   "region:",
		"/v1/reports/performance?channel=pigeon":                "channel: must be one of",
		"/v1/reports/performance?group_by=region":               "group_by: must be one of",
		"/v1/reports/performance?format=xml":                    "format: must be json or csv",
		"/v1/reports/performance?colour=red":                    "colour: unknown query parameter",
		"/v1/reports/performance?sku=a&sku=b":                   "sku: given 2 times",
		"/v1/reports/demand?limit=0":                            "limit: must be an integer",
		"/v1/reports/lag?to=2026-02-30":                         "to: must be a UTC date",
	} {
		code, _, body := f.getReport(t, q, "")
		if code != http.StatusBadRequest || !strings.Contains(body, want) {
			t.Errorf("%s: %d %s, want 400 with %q", q, code, body, want)
		}
	}
	resp, _ := get(t, f.base+"/v1/reports/performance")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without the token: %d", resp.StatusCode)
	}
	resp, body := get(t, f.base+"/reports")
	// The page: no token in it, nothing loaded from elsewhere (the demo has no internet).
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="performance"`) || strings.Contains(body, token) || strings.Contains(body, "<script src=") {
		t.Errorf("the page: %d", resp.StatusCode)
	}
}

// TestPoisonRecordsAreDeadLetteredAndPassed: a record that does not decode
// goes to the dead-letter topic with its source and reason, and the
// records after it are counted.
func TestPoisonRecordsAreDeadLetteredAndPassed(t *testing.T) {
	f := startReports(t, 7)
	adm, err := kafka.NewClusterAdmin(kafka.Config{Brokers: f.k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	// The shared cluster's dead-letter topic (every test's group writes there).
	if err := adm.CreateTopic(catalog.DeadLetter, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		t.Fatal(err)
	}
	adm.Close()
	sku := testenv.Unique(t, "sku")
	t0 := time.Now().UTC().Add(-time.Hour)
	f.produce(t,
		&sarama.ProducerMessage{Topic: f.topics.DeliveryStatus, Key: sarama.StringEncoder("n1"), Value: sarama.StringEncoder(`{"status":"sent"}`)},
		f.restock(t, sku, 1, t0),
		f.status(t, "u1", sku, events.ChannelEmail, events.StatusSent, 1, t0.Add(time.Second)),
	)
	f.caughtUp(t)
	rows := f.performance(t, "sku="+sku)
	if len(rows) != 1 || rows[0].Delivered != 1 || rows[0].Restocks != 1 {
		t.Fatalf("rows %s, want one with a restock and a delivery", rowsString(rows))
	}
	cl, err := kafka.NewClient(kafka.Config{Brokers: f.k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var reason string
	testenv.ReadTopic(t, cl, catalog.DeadLetter, func(m *sarama.ConsumerMessage) {
		h := kafka.ConsumerHeaders(m)
		if h.Get(events.HeaderDLQGroup) == f.group && h.Get(events.HeaderDLQTopic) == f.topics.DeliveryStatus {
			reason = h.Get(events.HeaderDLQReason)
		}
	})
	if !strings.Contains(reason, "event_id") {
		t.Errorf("dead letter of the report group: reason %q, want one naming the missing fields", reason)
	}
}
