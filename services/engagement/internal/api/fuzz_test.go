package api_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/services/engagement/internal/api"
	"backinstock/services/engagement/internal/eventlog"
	"backinstock/services/engagement/internal/ordermark"
	"backinstock/services/engagement/internal/store"
	"backinstock/shared/kafka"
	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
)

// POST /v1/orders is fuzzed against the real handler over a real
// redis-server and a kfake cluster: whatever a shop sends, the answer is a
// 2xx or a 4xx that names the problem, never a 5xx or a panic. The seeds
// run in `make test`; `make fuzz` runs the target for FUZZTIME.
func FuzzPostOrder(f *testing.F) {
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: f.TempDir()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(r.Close)
	rdb, err := redisconn.New(context.Background(), r.URL(), redisconn.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = rdb.Close() })
	k, err := testenv.StartKafka(1)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(k.Close)
	kcfg := kafka.Config{Brokers: k.Brokers}
	adm, err := kafka.NewClusterAdmin(kcfg)
	if err != nil {
		f.Fatal(err)
	}
	if err := adm.CreateTopic("orders.v1", &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		f.Fatal(err)
	}
	_ = adm.Close()
	p, err := kafka.NewProducer(kcfg, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = p.Close() })
	h := api.New(api.Options{
		Token: "t", Counters: store.New(rdb), ClickLog: eventlog.Clicks(p, "engagement.clicks.v1"),
		OrderMarks: ordermark.New(rdb), OrderLog: eventlog.Orders(p, "orders.v1"),
		RequestTimeout: 10 * time.Second, Metrics: api.NewMetrics(nil),
	})
	for _, s := range []string{
		`{"order_id":"o1","user_id":"u1","ordered_at":"2026-12-01T10:00:00Z","currency":"EUR","lines":[{"sku":"a","quantity":2,"unit_price":"19.99"}]}`,
		`{"order_id":"o1","user_id":"u1","ordered_at":"2026-12-01T11:00:00+01:00","currency":"EUR","lines":[{"sku":"a","quantity":2,"unit_price":"19.99"}]}`,
		`{"order_id":"o1","user_id":"u1","ordered_at":"2026-12-01T10:00:00Z","currency":"EUR","lines":[{"sku":"a","quantity":3,"unit_price":"19.99"}]}`,
		`{"order_id":"o2","user_id":"u1","ordered_at":"2026-12-01T10:00:00Z","currency":"JPY","lines":[{"sku":"a","quantity":1,"unit_price":"0.5"}]}`,
		`{"order_id":"o3","user_id":"u1","ordered_at":"2026-12-01T10:00:00Z","currency":"KWD","region":"eu-west-1","lines":[{"sku":"a","quantity":1000000,"unit_price":"999999999999.999"}]}`,
		`{"order_id":"o4","lines":[{}]}`, `{"lines":null}`, `{}`, `[]`, ``, `{"order_id":"o5","order_id":"o6"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		testenv.ServeFuzz(t, h, http.MethodPost, "http://engagement/v1/orders", "application/json", "t", body)
	})
}
