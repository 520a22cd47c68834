package edge

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/shared/testenv"
	topicsedge "backinstock/topics/edge"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

// publisher connects to the shared test server; the JetStream context on
// the same connection manages the streams, as in the notifier.
func publisher(t *testing.T, maxPending int, timeout time.Duration) (*Publisher, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(env.NATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPublisher(nc, maxPending, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return p, js
}

func TestStreamAndDuplicateWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, js := publisher(t, 1000, 5*time.Second)
	if err := EnsureStreams(ctx, js, "us-east-1", StreamOptions{Duplicates: 2 * time.Hour, MaxAge: time.Hour}); err == nil {
		t.Fatal("a max age shorter than the window was accepted")
	}
	o := StreamOptions{Duplicates: time.Hour, MaxAge: 24 * time.Hour, MaxBytes: 1 << 30}
	if err := EnsureStreams(ctx, js, "us-east-1", o); err != nil {
		t.Fatal(err)
	}
	// Start-up twice (an update) is fine.
	if err := EnsureStreams(ctx, js, "us-east-1", o); err != nil {
		t.Fatal(err)
	}
	// One stream per channel, each holding its channel's subjects and a
	// quarter of the region's size cap.
	for _, ch := range []string{"app", "web", "email", "sms"} {
		s, err := js.Stream(ctx, topicsedge.StreamName("us-east-1", ch))
		if err != nil {
			t.Fatal(err)
		}
		c := s.CachedInfo().Config
		if c.Subjects[0] != "edge.us-east-1."+ch+".>" || c.Duplicates != time.Hour || c.MaxBytes != 1<<28 {
			t.Fatalf("stream config %+v", c)
		}
	}
	// Each notification meets its own channel's duplicate window: a batch
	// over two channels re-published counts every message as a duplicate.
	items := []Item{
		{Subject: topicsedge.Subject("us-east-1", "app", "u1"), MsgID: "n1", Data: []byte("1")},
		{Subject: topicsedge.Subject("us-east-1", "email", "u2"), MsgID: "n2", Data: []byte("2")},
	}
	dups, err := p.Publish(items).Wait(ctx)
	if err != nil || dups != 0 {
		t.Fatalf("first publish: %d duplicates, %v", dups, err)
	}
	dups, err = p.Publish(append(items, Item{Subject: topicsedge.Subject("us-east-1", "app", "u3"), MsgID: "n3", Data: []byte("3")})).Wait(ctx)
	if err != nil || dups != 2 {
		t.Fatalf("re-publish: %d duplicates, want 2: %v", dups, err)
	}
	for ch, want := range map[string]uint64{"app": 2, "email": 1, "web": 0} {
		s, _ := js.Stream(ctx, topicsedge.StreamName("us-east-1", ch))
		if info, _ := s.Info(ctx); info.State.Msgs != want {
			t.Fatalf("%s stream holds %d, want %d", ch, info.State.Msgs, want)
		}
	}
}

// TestLegacyStreamIsRefused: a region that still has its one stream of
// before the split is refused at once, naming the stream and what to do,
// instead of retrying an overlap error until the deadline.
func TestLegacyStreamIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, js := publisher(t, 10, time.Second)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EDGE_OLD_1", Subjects: []string{"edge.old-1.>"}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := EnsureStreams(ctx, js, "old-1", StreamOptions{Duplicates: time.Minute})
	if !errors.Is(err, ErrLegacyStream) || !strings.Contains(err.Error(), "EDGE_OLD_1") || !strings.Contains(err.Error(), "docs/runbooks.md") {
		t.Fatalf("err = %v, want ErrLegacyStream naming EDGE_OLD_1 and the runbook", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("took %s: a legacy stream is no transient error", time.Since(start))
	}
	if _, err := js.Stream(ctx, topicsedge.StreamName("old-1", "app")); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatalf("a channel stream was created beside the legacy one: %v", err)
	}
}

// TestEnsureStreamsWaitsForTheServer: a notifier that starts while JetStream
// cannot create the stream (here: the server is down) keeps trying within its
// deadline instead of exiting.
func TestEnsureStreamsWaitsForTheServer(t *testing.T) {
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- EnsureStreams(ctx, js, "eu-west-1", StreamOptions{Duplicates: time.Hour, MaxAge: 24 * time.Hour})
	}()
	select {
	case err := <-done:
		t.Fatalf("EnsureStreams returned while the server was down: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("stream not created after the server came back: %v", err)
	}
}

func TestPublishConcurrentBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	p, js := publisher(t, 4096, 10*time.Second)
	// Over three connections, a batch each in turn: every ack still finds
	// its batch.
	for range 2 {
		nc, err := nats.Connect(env.NATS(t).URL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		if err := p.AddConn(nc); err != nil {
			t.Fatal(err)
		}
	}
	if err := EnsureStreams(ctx, js, "ap-south-1", StreamOptions{Duplicates: time.Hour, MaxAge: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, topicsedge.StreamName("ap-south-1", "app"))
	if err != nil {
		t.Fatal(err)
	}
	// 8 workers, 20 batches of 500 each; every other batch repeats the one
	// before it, so half of what is published is a duplicate.
	const workers, batches, size = 8, 20, 500
	errs := make(chan error, workers)
	for w := range workers {
		go func() {
			var items []Item
			for b := range batches {
				if b%2 == 0 {
					items = make([]Item, size)
					for i := range items {
						id := fmt.Sprintf("w%d-b%d-i%d", w, b, i)
						items[i] = Item{Subject: topicsedge.Subject("ap-south-1", "app", fmt.Sprintf("u%d", i)), MsgID: id, Data: []byte(id)}
					}
				}
				dups, err := p.Publish(items).Wait(ctx)
				if err != nil {
					errs <- err
					return
				}
				if want := size * (b % 2); dups != want {
					errs <- fmt.Errorf("worker %d batch %d: %d duplicates, want %d", w, b, dups, want)
					return
				}
			}
			errs <- nil
		}()
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(workers * batches / 2 * size); info.State.Msgs != want {
		t.Fatalf("stream holds %d, want %d", info.State.Msgs, want)
	}
}

func TestPublishRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, js := publisher(t, 3, time.Second)
	item := func(region, id string) Item {
		return Item{Subject: topicsedge.Subject(region, "sms", "u1"), MsgID: id, Data: []byte(id)}
	}

	t.Run("no stream", func(t *testing.T) {
		start := time.Now()
		_, err := p.Publish([]Item{item("nowhere", "a")}).Wait(ctx)
		if !errors.Is(err, ErrNotAcknowledged) || !strings.Contains(err.Error(), "503") {
			t.Fatalf("err = %v, want a 503 wrapping ErrNotAcknowledged", err)
		}
		if time.Since(start) > 500*time.Millisecond {
			t.Fatalf("took %s: no-responders should fail at once, not at the timeout", time.Since(start))
		}
	})

	t.Run("stream refuses", func(t *testing.T) {
		cfg := StreamConfig("full", "sms", StreamOptions{Duplicates: time.Minute})
		cfg.MaxMsgs, cfg.Discard = 1, jetstream.DiscardNew
		if _, err := js.CreateStream(ctx, cfg); err != nil {
			t.Fatal(err)
		}
		_, err := p.Publish([]Item{item("full", "a"), item("full", "b")}).Wait(ctx)
		if !errors.Is(err, ErrNotAcknowledged) || !strings.Contains(err.Error(), "maximum messages") {
			t.Fatalf("err = %v, want the stream's refusal", err)
		}
	})

	t.Run("in-flight bound", func(t *testing.T) {
		if err := EnsureStreams(ctx, js, "bound", StreamOptions{Duplicates: time.Minute}); err != nil {
			t.Fatal(err)
		}
		first := p.Publish([]Item{item("bound", "1"), item("bound", "2"), item("bound", "3")})
		// The bound (3) is taken until first's Wait: the next batch waits for
		// the timeout and fails instead of queueing without limit.
		if _, err := p.Publish([]Item{item("bound", "4")}).Wait(ctx); !errors.Is(err, ErrNotAcknowledged) || !strings.Contains(err.Error(), "in flight") {
			t.Fatalf("err = %v, want the in-flight bound", err)
		}
		if _, err := first.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		// A batch larger than the bound takes all of it, and goes through.
		many := []Item{item("bound", "5"), item("bound", "6"), item("bound", "7"), item("bound", "8")}
		if dups, err := p.Publish(many).Wait(ctx); err != nil || dups != 0 {
			t.Fatalf("batch over the bound: %d duplicates, %v", dups, err)
		}
	})
}

func TestParseAck(t *testing.T) {
	msg := func(data string, hdr nats.Header) *nats.Msg { return &nats.Msg{Data: []byte(data), Header: hdr} }
	for _, c := range []struct {
		name    string
		m       *nats.Msg
		dup     bool
		wantErr string
	}{
		{"stored", msg(`{"stream":"EDGE_R","seq":7}`, nil), false, ""},
		{"stored with domain", msg(`{"stream":"EDGE_R","domain":"hub","seq":7}`, nil), false, ""},
		{"duplicate as the server writes it", msg(`{"stream":"EDGE_R","seq":7,"duplicate": true}`, nil), true, ""},
		{"duplicate as json writes it", msg(`{"stream":"EDGE_R","seq":7,"duplicate":true}`, nil), true, ""},
		{"reordered", msg(`{"seq":7,"stream":"EDGE_R","duplicate":true}`, nil), true, ""},
		{"error", msg(`{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"EDGE_R","seq":0}`, nil), false, "maximum messages exceeded"},
		{"error after stream", msg(`{"stream":"EDGE_R","seq":0,"error":{"code":500,"description":"boom"}}`, nil), false, "boom"},
		{"no responders", msg("", nats.Header{"Status": []string{"503"}}), false, "status 503"},
		{"empty", msg("", nil), false, "empty"},
		{"garbage", msg("+OK", nil), false, "unreadable"},
		{"no stream", msg(`{"seq":1}`, nil), false, "without a stream"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dup, err := parseAck(c.m)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || dup != c.dup {
				t.Fatalf("parseAck = %v, %v; want %v", dup, err, c.dup)
			}
		})
	}
}
