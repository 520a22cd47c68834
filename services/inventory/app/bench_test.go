package app_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// benchService starts one inventory against the package's redis-server and
// kfake cluster.
func benchService(b *testing.B) (*service, []string) {
	b.Helper()
	k := env.Kafka(b)
	applyCatalog(b, k.Brokers, 3)
	url, _ := freshRedisURL(b)
	cfg := testConfig(b, url, k.Brokers)
	cfg.RelayEnabled = os.Getenv("BENCH_NO_RELAY") == ""
	return start(b, cfg), k.Brokers
}

// The benchmarks run a fixed workload whatever b.N is (the root Makefile
// runs them with -benchtime 1x) and report their figures as custom metrics.

// Set BENCH_NO_RELAY=1 to run the service without its relay (the figures
// then leave out the Kafka produce work, which here runs in the same process
// as the in-process kfake brokers).

// BenchmarkPut measures single PUT /v1/stock/{sku} updates per second for
// 5 s over keep-alive connections (64 concurrent clients, 10,000 skus,
// levels drawn between 0 and 9, so about one update in five is a restock).
func BenchmarkPut(b *testing.B) {
	svc, _ := benchService(b)
	p := testenv.Unique(b, "put")
	const clients, dur = 64, 5 * time.Second
	var done atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			for time.Since(start) < dur {
				sku := fmt.Sprintf("%s-%d", p, rng.IntN(10000))
				body := fmt.Sprintf(`{"region":"us-east-1","quantity":%d}`, rng.IntN(10))
				if !send(b, "PUT", svc.URL+"/v1/stock/"+sku, body) {
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(done.Load())/time.Since(start).Seconds(), "updates/s")
}

// BenchmarkBulk measures item updates per second through POST /v1/stock:
// 40 bodies of 10,000 updates, two in flight.
func BenchmarkBulk(b *testing.B) {
	svc, _ := benchService(b)
	p := testenv.Unique(b, "bulk")
	const size, count = 10000, 40
	bodies := make([]string, 4)
	for v := range bodies {
		var sb strings.Builder
		sb.WriteString(`{"updates":[`)
		for i := range size {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, `{"sku":"%s-%d","region":"eu-west-1","quantity":%d}`, p, i, (i+v)%4)
		}
		sb.WriteString(`]}`)
		bodies[v] = sb.String()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range 2 {
		wg.Go(func() {
			for {
				n := next.Add(1)
				if n > count || !send(b, "POST", svc.URL+"/v1/stock", bodies[n%int64(len(bodies))]) {
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(size*count)/time.Since(start).Seconds(), "items/s")
}

// send does one authorized request and reports whether it answered 200.
func send(b *testing.B, method, url, body string) bool {
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		b.Error(err)
		return false
	}
	_, _ = drain(resp)
	if resp.StatusCode != 200 {
		b.Errorf("status %d", resp.StatusCode)
		return false
	}
	return true
}

// BenchmarkRestockLatency measures, at a moderate steady load of 1,000
// restocks per second (plus their stock records), the time from sending a
// restocking PUT to a consumer receiving the RestockEvent (p50-ms, p99-ms),
// and from the outbox append (the record timestamp, millisecond precision)
// to the receipt (outbox-p50-ms, outbox-p99-ms).
func BenchmarkRestockLatency(b *testing.B) {
	svc, brokers := benchService(b)
	p := testenv.Unique(b, "lat")
	const n, rate = 3000, 1000
	sent := make([]atomic.Int64, n)
	got := make([]atomic.Int64, n)
	appended := make([]atomic.Int64, n) // the record timestamp: the outbox append
	var received atomic.Int64
	stop := consumeRestocks(b, brokers, p, func(i int, at, ts time.Time) {
		if i < n && got[i].CompareAndSwap(0, at.UnixNano()) {
			appended[i].Store(ts.UnixNano())
			received.Add(1)
		}
	})
	defer stop()
	// Warm up: the relay's producer is connected before the clock starts.
	warm := testenv.Unique(b, "warm")
	put(b, svc.URL, warm, "us-east-1", 5)
	testenv.Eventually(b, 30*time.Second, func() bool {
		return publishedRestocks(b, svc) > 0
	}, "relay published")
	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		<-tick.C
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			sent[i].Store(time.Now().UnixNano())
			put(b, svc.URL, fmt.Sprintf("%s-%d", p, i), "us-east-1", 5)
		})
	}
	wg.Wait()
	testenv.Eventually(b, 60*time.Second, func() bool { return received.Load() == n }, "all restocks received")
	b.StopTimer()
	lat := make([]float64, n)
	for i := range lat {
		lat[i] = float64(got[i].Load()-sent[i].Load()) / 1e6
	}
	slices.Sort(lat)
	b.ReportMetric(lat[len(lat)/2], "p50-ms")
	b.ReportMetric(lat[len(lat)*99/100], "p99-ms")
	b.ReportMetric(lat[len(lat)-1], "max-ms")
	rl := make([]float64, n)
	for i := range rl {
		rl[i] = float64(got[i].Load()-appended[i].Load()) / 1e6
	}
	slices.Sort(rl)
	b.ReportMetric(rl[len(rl)/2], "outbox-p50-ms")
	b.ReportMetric(rl[len(rl)*99/100], "outbox-p99-ms")
}

func drain(resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	var n int64
	buf := make([]byte, 32<<10)
	for {
		m, err := resp.Body.Read(buf)
		n += int64(m)
		if err != nil {
			return n, nil
		}
	}
}

// consumeRestocks calls fn with the index of every restock of prefix-<i>,
// reading every partition from its end with a short fetch wait.
func consumeRestocks(b *testing.B, brokers []string, prefix string, fn func(i int, at, ts time.Time)) func() {
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.MaxWaitTime = 5 * time.Millisecond
	cl, err := sarama.NewClient(brokers, sc)
	if err != nil {
		b.Fatal(err)
	}
	cons, _ := sarama.NewConsumerFromClient(cl)
	parts, _ := cl.Partitions(catalog.Restock)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	for _, part := range parts {
		pc, err := cons.ConsumePartition(catalog.Restock, part, sarama.OffsetNewest)
		if err != nil {
			b.Fatal(err)
		}
		pcs = append(pcs, pc)
		wg.Go(func() {
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					now := time.Now()
					k := string(m.Key)
					if rest, ok := strings.CutPrefix(k, prefix+"-"); ok {
						var i int
						if _, err := fmt.Sscanf(rest, "%d", &i); err == nil {
							fn(i, now, m.Timestamp)
						}
					}
				case <-ctx.Done():
					return
				}
			}
		})
	}
	return func() {
		cancel()
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
		_ = cons.Close()
		_ = cl.Close()
	}
}

// publishedRestocks is the number of restocks the relay has published.
func publishedRestocks(b *testing.B, svc *service) float64 {
	mfs, err := svc.Reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "backinstock_inventory_published_records_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetValue() == catalog.Restock {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
