package edge

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func TestStreamAndDuplicateWindow(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nc, err := nats.Connect(env.NATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	p, err := NewPublisher(nc, 1000, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureStream(ctx, p.JetStream(), "us-east-1", StreamOptions{Duplicates: 2 * time.Hour, MaxAge: time.Hour}); err == nil {
		t.Fatal("a max age shorter than the window was accepted")
	}
	o := StreamOptions{Duplicates: time.Hour, MaxAge: 24 * time.Hour, MaxBytes: 1 << 30}
	s, err := EnsureStream(ctx, p.JetStream(), "us-east-1", o)
	if err != nil {
		t.Fatal(err)
	}
	// Start-up twice (an update) is fine.
	if _, err := EnsureStream(ctx, p.JetStream(), "us-east-1", o); err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	if info.Config.Name != "EDGE_US_EAST_1" || info.Config.Subjects[0] != "edge.us-east-1.>" || info.Config.Duplicates != time.Hour {
		t.Fatalf("stream config %+v", info.Config)
	}
	items := []Item{
		{Subject: Subject("us-east-1", "app", "u1"), MsgID: "n1", Data: []byte("1")},
		{Subject: Subject("us-east-1", "app", "u2"), MsgID: "n2", Data: []byte("2")},
	}
	dups, err := p.Publish(items).Wait(ctx)
	if err != nil || dups[0] || dups[1] {
		t.Fatalf("first publish: %v %v", dups, err)
	}
	dups, err = p.Publish(items).Wait(ctx)
	if err != nil || !dups[0] || !dups[1] {
		t.Fatalf("re-publish not reported as duplicates: %v %v", dups, err)
	}
	info, _ = s.Info(ctx)
	if info.State.Msgs != 2 {
		t.Fatalf("stream holds %d, want 2", info.State.Msgs)
	}
}

// TestEnsureStreamWaitsForTheServer: a notifier that starts while JetStream
// cannot create the stream (here: the server is down) keeps trying within its
// deadline instead of exiting.
func TestEnsureStreamWaitsForTheServer(t *testing.T) {
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
	p, err := NewPublisher(nc, 1000, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	n.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := EnsureStream(ctx, p.JetStream(), "eu-west-1", StreamOptions{Duplicates: time.Hour, MaxAge: 24 * time.Hour})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("EnsureStream returned while the server was down: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("stream not created after the server came back: %v", err)
	}
}
