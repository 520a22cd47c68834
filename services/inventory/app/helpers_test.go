package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/services/inventory/app"
	"backinstock/services/inventory/internal/relay"
	"backinstock/services/inventory/internal/store"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

const token = "test-token"

// applied remembers the clusters the catalogue was applied to.
var applied sync.Map

// applyCatalog creates the catalogue's topics on the cluster at brokers.
func applyCatalog(t testing.TB, brokers []string, n int) {
	t.Helper()
	key := strings.Join(brokers, ",")
	if _, ok := applied.Load(key); ok {
		return
	}
	adm, err := kafka.NewClusterAdmin(kafka.Config{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plan, err := catalog.Plan(ctx, adm, cat.ForBrokers(n), false)
	if err != nil {
		t.Fatal(err)
	}
	if err := catalog.Apply(ctx, adm, plan); err != nil {
		t.Fatal(err)
	}
	applied.Store(key, true)
}

var redisDB atomic.Int32

// freshRedisURL is a Redis database of the shared server no other test uses.
func freshRedisURL(t testing.TB) (string, *redis.Client) {
	t.Helper()
	r := env.Redis(t)
	db := int(redisDB.Add(1) % 16)
	c := redis.NewClient(&redis.Options{Addr: r.Addr, DB: db})
	t.Cleanup(func() { _ = c.Close() })
	if err := c.FlushDB(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	return r.URL()[:len(r.URL())-1] + itoa(db), c
}

func itoa(n int) string { return strconv.Itoa(n) }

// service is one in-process inventory.
type service struct {
	URL  string
	Reg  *prometheus.Registry
	done chan error
	stop context.CancelFunc
}

// shards is testConfig's OUTBOX_SHARDS, for the tests that read the outbox.
const shards = 4

// testConfig is the configuration the flags default to, pointed at the
// shared servers.
func testConfig(t testing.TB, redisURL string, brokers []string) app.Config {
	t.Helper()
	var cfg app.Config
	s := config.NewSet("inventory-test")
	cfg.Bind(s)
	if err := s.Parse(nil); err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr, cfg.APIToken, cfg.RedisURL = "127.0.0.1:0", token, redisURL
	cfg.Kafka = kafka.Config{Brokers: brokers}
	cfg.OutboxShards = shards
	cfg.RelayLeaseTTL = 2 * time.Second
	return cfg
}

// start runs app.Run until the test ends.
func start(t testing.TB, cfg app.Config) *service {
	t.Helper()
	addr := make(chan string, 1)
	cfg.OnListen = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{Reg: prometheus.NewRegistry(), done: make(chan error, 1), stop: cancel}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	go func() { s.done <- app.Run(ctx, cfg, log, s.Reg) }()
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case err := <-s.done:
		t.Fatalf("app.Run: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("app did not listen")
	}
	t.Cleanup(func() { s.Stop(t) })
	return s
}

// Stop cancels Run and waits for it (idempotent).
func (s *service) Stop(t testing.TB) {
	t.Helper()
	s.stop()
	if s.done == nil {
		return
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("app.Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("app.Run did not return")
	}
	s.done = nil
}

// client holds every request and answer of these tests to the OpenAPI
// document (testenv.Contract): the document and the code cannot drift.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &testenv.Contract{Doc: "../openapi.yaml", Next: &http.Transport{MaxIdleConnsPerHost: 100}}}

// do sends a request and returns the status, the body and the headers.
func do(t testing.TB, method, url, tok string, body any, hdr ...string) (int, []byte, http.Header) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// putResult is the PUT answer.
type putResult struct {
	SKU      string `json:"sku"`
	Region   string `json:"region"`
	Quantity int64  `json:"quantity"`
	Previous int64  `json:"previous_quantity"`
	Episode  int64  `json:"episode"`
	Restock  bool   `json:"restock"`
}

func put(t testing.TB, base, sku, region string, q int64, hdr ...string) putResult {
	t.Helper()
	code, body, _ := do(t, "PUT", base+"/v1/stock/"+sku, token, map[string]any{"region": region, "quantity": q}, hdr...)
	if code != http.StatusOK {
		t.Fatalf("PUT %s %d: %d %s", sku, q, code, body)
	}
	var r putResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// backlog is the number of unpublished outbox entries.
func backlog(t testing.TB, rdb redis.UniversalClient) int64 {
	st, err := store.New(rdb, store.Options{Shards: shards})
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := relay.Backlog(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// collector consumes a topic from the oldest offset in the background.
type collector struct {
	topic string
	cl    sarama.Client
	mu    sync.Mutex
	msgs  []*sarama.ConsumerMessage
	next  map[int32]int64
}

func collect(t testing.TB, brokers []string, topic string) *collector {
	t.Helper()
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.Fetch.Min = 1
	sc.Consumer.MaxWaitTime = 50 * time.Millisecond
	cl, err := sarama.NewClient(brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := cl.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{topic: topic, cl: cl, next: map[int32]int64{}}
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	for _, p := range parts {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		c.next[p] = 0
		wg.Go(func() {
			for m := range pc.Messages() {
				c.mu.Lock()
				c.msgs = append(c.msgs, m)
				c.next[m.Partition] = m.Offset + 1
				c.mu.Unlock()
			}
		})
	}
	t.Cleanup(func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
		_ = cons.Close()
		_ = cl.Close()
	})
	return c
}

// caughtUp reports whether every partition was read to its high watermark.
func (c *collector) caughtUp() bool {
	for p := range c.snapshotNext() {
		hwm, err := c.cl.GetOffset(c.topic, p, sarama.OffsetNewest)
		if err != nil {
			return false
		}
		c.mu.Lock()
		n := c.next[p]
		c.mu.Unlock()
		if n < hwm {
			return false
		}
	}
	return true
}

func (c *collector) snapshotNext() map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[int32]int64, len(c.next))
	for k, v := range c.next {
		out[k] = v
	}
	return out
}

// restocks decodes the restock events whose sku starts with prefix.
func (c *collector) restocks(t testing.TB, prefix string) []events.RestockEvent {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []events.RestockEvent
	for _, m := range c.msgs {
		if !strings.HasPrefix(string(m.Key), prefix) {
			continue
		}
		ev, err := events.DecodeRestockEvent(m.Value)
		if err != nil {
			t.Fatalf("restock record %s: %v", m.Value, err)
		}
		out = append(out, ev)
	}
	return out
}

// levels decodes, in partition order, the stock levels whose key starts with prefix.
func (c *collector) levels(t testing.TB, prefix string) []events.StockLevel {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []events.StockLevel
	for _, m := range c.msgs {
		if !strings.HasPrefix(string(m.Key), prefix) {
			continue
		}
		lv, err := events.DecodeStockLevel(m.Value)
		if err != nil {
			t.Fatalf("stock record %s: %v", m.Value, err)
		}
		out = append(out, lv)
	}
	return out
}

// settle waits until the outbox is empty and the collectors have read
// everything Kafka holds, so counts are final.
func settle(t testing.TB, rdb redis.UniversalClient, cs ...*collector) {
	t.Helper()
	testenv.Eventually(t, 60*time.Second, func() bool {
		if backlog(t, rdb) != 0 {
			return false
		}
		for _, c := range cs {
			if !c.caughtUp() {
				return false
			}
		}
		return true
	}, "outbox drained and topics read to the end")
}
