package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"backinstock/services/wishlist/app"
	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

const token = "test-token"

var (
	sharedOnce sync.Once
	sharedErr  error
)

// sharedKafka is the package's kfake cluster with the catalogue applied.
func sharedKafka(t *testing.T) kafka.Config {
	t.Helper()
	k := env.Kafka(t)
	cfg := kafka.Config{Brokers: k.Brokers}
	sharedOnce.Do(func() { sharedErr = applyCatalog(cfg) })
	if sharedErr != nil {
		t.Fatalf("apply catalogue: %v", sharedErr)
	}
	return cfg
}

// privateKafka is a cluster of the test's own, for fan-out tests: the group
// and topic names are fixed by the contracts, so isolation is per cluster.
func privateKafka(t *testing.T) kafka.Config {
	t.Helper()
	k, err := testenv.StartKafka(3)
	if err != nil {
		t.Fatalf("start kafka: %v", err)
	}
	t.Cleanup(k.Close)
	cfg := kafka.Config{Brokers: k.Brokers}
	if err := applyCatalog(cfg); err != nil {
		t.Fatalf("apply catalogue: %v", err)
	}
	return cfg
}

func applyCatalog(cfg kafka.Config) error {
	cat, err := catalog.Default()
	if err != nil {
		return err
	}
	adm, err := kafka.NewClusterAdmin(cfg)
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err = catalog.Sync(ctx, adm, cat.ForBrokers(3), false)
	return err
}

// baseConfig is the commands' defaults (as parsed from no flags) pointed at
// the test's servers.
func baseConfig(t *testing.T, kcfg kafka.Config, redisURL string) app.Config {
	t.Helper()
	var cfg app.Config
	s := config.NewSet("test")
	s.FS.SetOutput(io.Discard)
	cfg.Bind(s)
	cfg.BindServe(s)
	cfg.BindFanout(s)
	if err := s.Parse(nil); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	cfg.Kafka = kcfg
	cfg.RedisURL = redisURL
	cfg.RedisCluster = false
	cfg.Regions = append([]string(nil), catalog.DefaultRegions...)
	cfg.HTTPAddr = "127.0.0.1:0"
	cfg.MetricsAddr = "127.0.0.1:0"
	cfg.APIToken = token
	cfg.Region = ""
	return cfg
}

func testLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// startServe runs the API and returns its base URL; it stops at cleanup.
func startServe(t *testing.T, cfg app.Config) string {
	t.Helper()
	addr := make(chan string, 1)
	cfg.OnListen = func(a string) { addr <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunServe(ctx, cfg, testLogger(t), prometheus.NewRegistry()) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case a := <-addr:
		return "http://" + a
	case err := <-done:
		t.Fatalf("serve stopped: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not listen")
	}
	return ""
}

// startFanout runs region's fan-out worker in-process; the returned stop
// ends it and waits.
func startFanout(t *testing.T, cfg app.Config, region string) (reg *prometheus.Registry, stop func()) {
	t.Helper()
	cfg.Region = region
	reg = prometheus.NewRegistry()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- app.RunFanout(ctx, cfg, testLogger(t).With(zap.String("worker", region)), reg) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("fanout %s: %v", region, err)
			}
		})
	}
	t.Cleanup(stop)
	return reg, stop
}

type client struct {
	t    *testing.T
	base string
}

// contract holds every request and answer of these tests to the OpenAPI
// document (testenv.Contract): the document and the code cannot drift.
var contract = &http.Client{Transport: &testenv.Contract{Doc: "../openapi.yaml"}}

// do sends a request and decodes a JSON answer into out (when not nil).
func (c client) do(method, path, tok, contentType, body string, out any) int {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := contract.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func (c client) putEntry(user, sku, region string, chans ...string) {
	c.t.Helper()
	body, _ := json.Marshal(map[string]any{"region": region, "channels": chans})
	if code := c.do("PUT", "/v1/users/"+user+"/wishlist/"+sku, token, "application/json", string(body), nil); code != 200 {
		c.t.Fatalf("PUT entry %s/%s: %d", user, sku, code)
	}
}

// produce writes one record and waits for its ack.
func produce(t *testing.T, kcfg kafka.Config, topic, key string, value []byte) {
	t.Helper()
	p, err := kafka.NewProducer(kcfg, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	m := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key)}
	if value != nil {
		m.Value = sarama.ByteEncoder(value)
	}
	if err := p.SendAll(context.Background(), []*sarama.ProducerMessage{m}); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

func restock(sku, region string, episode, qty int64, d *events.Delivery) events.RestockEvent {
	return events.RestockEvent{EventID: events.RestockEventID(sku, region, episode), SKU: sku, Region: region, Quantity: qty,
		Episode: episode, OccurredAt: time.Now().UTC(), Product: &events.Product{Title: "Thing " + sku, URL: "https://shop.example.com/" + sku},
		Delivery: d}
}

func produceEvent(t *testing.T, kcfg kafka.Config, topic, key string, v interface{ Validate() error }) {
	t.Helper()
	data, err := events.Encode(v)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	produce(t, kcfg, topic, key, data)
}

// endOffsets sums the end offsets of every partition of topics.
func endOffsets(t *testing.T, cl sarama.Client, topics ...string) int64 {
	t.Helper()
	var n int64
	for _, topic := range topics {
		parts, err := cl.Partitions(topic)
		if err != nil {
			t.Fatalf("partitions of %s: %v", topic, err)
		}
		for _, p := range parts {
			off, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				t.Fatalf("offset of %s/%d: %v", topic, p, err)
			}
			n += off
		}
	}
	return n
}

func newClient(t *testing.T, kcfg kafka.Config) sarama.Client {
	t.Helper()
	cl, err := kafka.NewClient(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func key(parts ...any) string { return fmt.Sprint(parts...) }
