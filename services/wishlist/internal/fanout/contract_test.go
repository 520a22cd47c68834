package fanout_test

import (
	"context"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/services/wishlist/internal/fanout"
	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/kafka"
	"backinstock/shared/kafka/handlertest"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

const (
	region      = "us-east-1"
	wishlisters = 2 // per restocked sku, each on the app channel
)

var (
	catalogOnce sync.Once
	catalogErr  error
)

// kafkaConfig is the package's kfake cluster with the catalogue applied; the
// checks share its fixed topics and keep apart by sku.
func kafkaConfig(tb testing.TB) kafka.Config {
	tb.Helper()
	cfg := kafka.Config{Brokers: env.Kafka(tb).Brokers}
	catalogOnce.Do(func() {
		cat, err := catalog.Default()
		if err != nil {
			catalogErr = err
			return
		}
		adm, err := kafka.NewClusterAdmin(cfg)
		if err != nil {
			catalogErr = err
			return
		}
		defer adm.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, catalogErr = catalog.Sync(ctx, adm, cat.ForBrokers(3), false)
	})
	if catalogErr != nil {
		tb.Fatalf("apply catalogue: %v", catalogErr)
	}
	return cfg
}

// TestFanoutKeepsTheHandlerContract runs the shared handler suite against
// the fan-out on kfake and redis-server. Slow is a stock-aware restock whose
// first wave reaches one wishlister and whose next wave is an hour away.
func TestFanoutKeepsTheHandlerContract(t *testing.T) {
	handlertest.Run(t, func(tb testing.TB, o handlertest.Options) handlertest.Harness {
		kcfg := kafkaConfig(tb)
		rdb := redis.NewClient(&redis.Options{Addr: env.Redis(tb).Addr})
		tb.Cleanup(func() { _ = rdb.Close() })
		st := store.New(rdb)
		prod, err := kafka.NewProducer(kcfg, kafka.ProducerOptions{}, zap.NewNop())
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = prod.Close() })
		cl, err := kafka.NewClient(kcfg)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = cl.Close() })
		log := zaptest.NewLogger(tb, zaptest.Level(zap.WarnLevel))
		// No stock view: only a second wave reads it, and no check gets there.
		f, err := fanout.New(fanout.Config{Region: region, Policy: wishes.Policy{Mode: events.DeliveryAll},
			CheckpointTTL: time.Hour}, st, prod, nil, fanout.NewMetrics(nil, region), log)
		if err != nil {
			tb.Fatal(err)
		}

		prefix := testenv.Unique(tb, "sku")
		var (
			mu  sync.Mutex
			seq int
		)
		good := func(tb testing.TB, n int) []*sarama.ConsumerMessage {
			recs := make([]*sarama.ConsumerMessage, n)
			for i := range recs {
				mu.Lock()
				seq++
				sku := prefix + "-" + strconv.Itoa(seq)
				mu.Unlock()
				var puts []wishes.Entry
				for u := range wishlisters {
					puts = append(puts, wishes.Entry{UserID: "u" + strconv.Itoa(u) + "-" + sku, SKU: sku, Region: region,
						Channels: []string{events.ChannelApp}, Since: time.Now().UTC().Add(time.Duration(u) * time.Second)})
				}
				if err := st.Write(context.Background(), puts, nil, make([]*wishes.Entry, len(puts))); err != nil {
					tb.Fatal(err)
				}
				ev := events.RestockEvent{EventID: events.RestockEventID(sku, region, 1), SKU: sku, Region: region, Quantity: 1,
					Episode: 1, OccurredAt: time.Now().UTC(), Product: &events.Product{Title: "Thing " + sku, URL: "https://shop.example.com/" + sku}}
				if o.Slow {
					ev.Delivery = &events.Delivery{Mode: events.DeliveryStockAware, PerUnit: 1, MinStock: 1, IntervalMS: int64(time.Hour / time.Millisecond)}
				}
				v, err := events.Encode(ev)
				if err != nil {
					tb.Fatal(err)
				}
				recs[i] = &sarama.ConsumerMessage{Topic: catalog.Restock, Key: []byte(sku), Value: v, Offset: int64(seq)}
			}
			return recs
		}
		return handlertest.Harness{
			Handler: f,
			Kafka:   kcfg,
			Topic:   catalog.Restock,
			Good:    good,
			Poison: func(testing.TB) *sarama.ConsumerMessage {
				return &sarama.ConsumerMessage{Topic: catalog.Restock, Key: []byte(prefix), Value: []byte(`{"not":"a restock"}`)}
			},
			Effects: func(tb testing.TB, recs []*sarama.ConsumerMessage) int {
				skus := map[string]bool{}
				for _, r := range recs {
					skus[string(r.Key)] = true
				}
				n := 0
				testenv.ReadTopic(tb, cl, catalog.Notify(region, events.ChannelApp), func(m *sarama.ConsumerMessage) {
					if nt, err := events.DecodeNotification(m.Value); err == nil && skus[nt.SKU] {
						n++
					}
				})
				return n
			},
			Want: func(recs []*sarama.ConsumerMessage) int { return wishlisters * len(recs) },
		}
	})
}
