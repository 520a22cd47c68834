package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/services/notifier/internal/edge"
	"backinstock/shared/edgecheck"
	"backinstock/shared/testenv"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

// streams measures what the edge's layout costs JetStream: the same
// publisher (batches of 500 awaiting their PubAcks, as the notifier
// publishes, over 1 or more connections) sends n notifications spread over the four channels to
// a fresh nats-server holding the region's edge either as one stream per
// channel (today's layout) or as one stream for the region (the layout
// before). Each run then re-publishes 5 % of the ids, which the duplicate
// window must acknowledge as duplicates, and checks that the streams hold
// every id exactly once.
func streams(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("streams", flag.ContinueOnError)
	n := fs.Int("n", 600000, "notifications per run")
	workers := fs.Int("workers", 16, "concurrent batches in flight (the notifier has one per partition)")
	rounds := fs.Int("rounds", 2, "runs of each layout, alternating")
	connList := fs.String("conns", "1,4", "publisher connections to measure, comma-separated (NOTIFIER_EDGE_CONNECTIONS)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var conns []int
	for _, f := range strings.Split(*connList, ",") {
		c, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || c < 1 {
			return fmt.Errorf("-conns: %q is not a count of at least 1", f)
		}
		conns = append(conns, c)
	}
	for r := 1; r <= *rounds; r++ {
		for _, c := range conns {
			for _, perChannel := range []bool{true, false} {
				res, err := streamsRun(*n, *workers, c, perChannel)
				if err != nil {
					return err
				}
				layout := "one stream per channel (4)"
				if !perChannel {
					layout = "one stream for the region"
				}
				fmt.Fprintf(out, "round %d, %d connection(s), %-27s %d notifications in %s: %.0f/s; re-published %d, %d acknowledged as duplicates; stored %d distinct of %d: exactly once\n",
					r, c, layout+":", *n, res.took.Round(time.Millisecond), float64(*n)/res.took.Seconds(), res.again, res.dups, res.stored, *n)
			}
		}
	}
	return nil
}

type streamsResult struct {
	took                time.Duration
	again, dups, stored int
}

func streamsRun(n, workers, conns int, perChannel bool) (streamsResult, error) {
	var res streamsResult
	dir, err := os.MkdirTemp("", "notifier-bench-streams-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	ns, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: filepath.Join(dir, "nats")})
	if err != nil {
		return res, err
	}
	defer ns.Close()
	nc, err := nats.Connect(ns.URL())
	if err != nil {
		return res, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return res, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const region = "bench"
	o := edge.StreamOptions{Duplicates: time.Hour, MaxAge: 24 * time.Hour}
	if perChannel {
		err = edge.EnsureStreams(ctx, js, region, o)
	} else {
		cfg := edge.StreamConfig(region, events.ChannelApp, o)
		cfg.Name, cfg.Subjects = topicsedge.LegacyStreamName(region), []string{topicsedge.RegionFilter(region)}
		_, err = js.CreateStream(ctx, cfg)
	}
	if err != nil {
		return res, err
	}
	pub, err := edge.NewPublisher(nc, 16384, 30*time.Second)
	if err != nil {
		return res, err
	}
	for range conns - 1 {
		more, err := nats.Connect(ns.URL())
		if err != nil {
			return res, err
		}
		defer more.Close()
		if err := pub.AddConn(more); err != nil {
			return res, err
		}
	}
	chans := events.ChannelNames()
	id := func(i int) (user, ch, id string) {
		user, ch = "u"+strconv.Itoa(i), chans[i%len(chans)]
		return user, ch, events.NotificationID(user, "SKU-1", region, 1, ch)
	}
	item := func(i int) edge.Item {
		user, ch, id := id(i)
		return edge.Item{Subject: topicsedge.Subject(region, ch, user), MsgID: id,
			Data: fmt.Appendf(nil, `{"notification_id":%q,"user_id":%q,"sku":"SKU-1","region":%q,"channel":%q,"episode":1,"title":"Kettle is back","body":"Kettle SKU-1 is back in stock at 19.99.","url":"https://shop.example/p/SKU-1"}`, id, user, region, ch)}
	}
	// publish sends ids [0, n) in stride step from each worker's start,
	// batches of 500, and returns how many were acknowledged as duplicates.
	publish := func(step int) (int, error) {
		var mu sync.Mutex
		dups := 0
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				for lo := w * 500 * step; lo < n; lo += workers * 500 * step {
					items := make([]edge.Item, 0, 500)
					for i := lo; i < min(lo+500*step, n); i += step {
						items = append(items, item(i))
					}
					d, err := pub.Publish(items).Wait(ctx)
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					dups += d
					mu.Unlock()
				}
				errs <- nil
			}()
		}
		for range workers {
			if err := <-errs; err != nil {
				return dups, err
			}
		}
		return dups, nil
	}
	start := time.Now()
	if d, err := publish(1); err != nil || d != 0 {
		return res, fmt.Errorf("first publish: %d duplicates, %v", d, err)
	}
	res.took = time.Since(start)
	res.again = (n + 19) / 20 // every 20th id, 5 %
	if res.dups, err = publish(20); err != nil {
		return res, err
	}
	// Every id distinct: stored n with every re-publish a duplicate means
	// none lost and none doubled. The per-channel layout is also read back
	// whole (ids, subjects, Msg-Id headers), as the notifier bench does.
	if perChannel {
		st, err := edgecheck.Read(ctx, js, region)
		if err != nil {
			return res, err
		}
		res.stored = int(st.Msgs)
		got, err := edgecheck.Collect(ctx, js, region, nil, nil)
		if err != nil {
			return res, err
		}
		want := make(map[string]bool, n)
		for i := range n {
			_, _, id := id(i)
			want[id] = true
		}
		if c := edgecheck.Tally("streams", want, got); !c.OK() {
			return res, fmt.Errorf("NOT exactly once at the edge: %s", c)
		}
	} else {
		st, err := js.Stream(ctx, topicsedge.LegacyStreamName(region))
		if err != nil {
			return res, err
		}
		res.stored = int(st.CachedInfo().State.Msgs)
	}
	if res.stored != n || res.dups != res.again {
		return res, fmt.Errorf("NOT exactly once at the edge: %d stored of %d; %d of %d re-published acknowledged as duplicates", res.stored, n, res.dups, res.again)
	}
	return res, nil
}
