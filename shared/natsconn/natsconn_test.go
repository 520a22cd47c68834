package natsconn_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"backinstock/shared/natsconn"
	"backinstock/shared/testenv"
)

func TestConnectPublishesToJetStreamAndSurvivesRestart(t *testing.T) {
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	nc, js, err := natsconn.Connect(n.URL(), natsconn.Options{Name: "test"}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	// The connection reconnects on its own and the file store kept the message.
	testenv.Eventually(t, 20*time.Second, func() bool {
		_, err := js.Publish(ctx, "t.2", []byte("y"))
		return err == nil
	}, "publish after restart")
	s, err := js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := s.Info(ctx); err != nil || info.State.Msgs != 2 {
		t.Fatalf("stream state %+v, %v", info, err)
	}
}

func TestConnectFailsClearly(t *testing.T) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = natsconn.Connect(fmt.Sprintf("nats://127.0.0.1:%d", port), natsconn.Options{}, zap.NewNop())
	if err == nil {
		t.Fatal("connected to nothing")
	}
}

// TestRestartInOperatorModeStyle: a Configure hook that sets options the
// server rewrites at start must not make Restart fail.
func TestRestartKeepsConfigureHook(t *testing.T) {
	calls := 0
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir(), Configure: func(o *server.Options) {
		calls++
		o.ServerName = "hooked"
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if err := n.Restart(); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || n.Server.Name() != "hooked" {
		t.Fatalf("hook ran %d times, server %q", calls, n.Server.Name())
	}
}

// TestDrainFinishesHandlersAndPublishes: after Drain returns, the messages a
// subscription held were handled, the publishes still buffered reached the
// server, and the connection is closed.
func TestDrainFinishesHandlersAndPublishes(t *testing.T) {
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	connect := func() *nats.Conn {
		nc, _, err := natsconn.Connect(n.URL(), natsconn.Options{Name: "drain"}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		return nc
	}
	const total = 100

	// A subscriber whose handler is held at the first message, so the rest
	// are pending in the subscription when the drain starts.
	sub := connect()
	release := make(chan struct{})
	var mu sync.Mutex
	handled := 0
	s, err := sub.Subscribe("held", func(*nats.Msg) {
		<-release
		mu.Lock()
		handled++
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	// A receiver for what the drained publisher sends.
	recv := connect()
	var got atomic.Int64
	if _, err := recv.Subscribe("sent", func(*nats.Msg) { got.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := recv.Flush(); err != nil {
		t.Fatal(err)
	}

	pub := connect()
	for range total {
		if err := pub.Publish("held", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		msgs, _, _ := s.Pending()
		return msgs == total // the one in the held handler counts until it returns
	}, "messages pending in the subscription")

	subDone := make(chan error, 1)
	go func() { subDone <- natsconn.Drain(sub, 10*time.Second) }()
	select {
	case err := <-subDone:
		t.Fatalf("Drain returned while the handler still held messages: %v", err)
	default:
	}
	close(release)
	if err := <-subDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if handled != total {
		t.Errorf("handled %d of %d messages before Drain returned", handled, total)
	}
	mu.Unlock()
	if !sub.IsClosed() {
		t.Error("subscriber connection not closed after Drain")
	}

	// Publishes buffered in the client, not flushed: Drain sends them.
	for range total {
		if err := pub.Publish("sent", []byte("y")); err != nil {
			t.Fatal(err)
		}
	}
	if err := natsconn.Drain(pub, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !pub.IsClosed() {
		t.Error("publisher connection not closed after Drain")
	}
	testenv.Eventually(t, 10*time.Second, func() bool { return got.Load() == total }, "drained publishes received")
}

func TestDrainTimesOutAndCloses(t *testing.T) {
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	closedBefore := make(chan struct{})
	nc, err := nats.Connect(n.URL(), nats.ClosedHandler(func(*nats.Conn) { close(closedBefore) }))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	release := make(chan struct{})
	defer close(release)
	if _, err := nc.Subscribe("stuck", func(*nats.Msg) { <-release }); err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("stuck", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	err = natsconn.Drain(nc, 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not closed within 200ms") {
		t.Fatalf("Drain of a stuck handler: %v", err)
	}
	if !nc.IsClosed() {
		t.Error("connection left open after the drain timed out")
	}
	// The connection's own closed handler still runs.
	select {
	case <-closedBefore:
	case <-time.After(10 * time.Second):
		t.Error("the connection's closed handler did not run")
	}
	if err := natsconn.Drain(nc, time.Second); !errors.Is(err, nats.ErrConnectionClosed) {
		t.Errorf("Drain of a closed connection: %v, want ErrConnectionClosed", err)
	}
}

// TestConnectVerifiesTheServersTLSCertificate: against a NATS that requires
// TLS, the connection trusts the CA named by CAFile (NATS_TLS_CA_FILE) and
// refuses a certificate that chains to no trusted root.
func TestConnectVerifiesTheServersTLSCertificate(t *testing.T) {
	files, err := testenv.WriteTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: files.Cert, KeyFile: files.Key})
	if err != nil {
		t.Fatal(err)
	}
	n, err := testenv.StartNATS(testenv.NATSOptions{StoreDir: t.TempDir(), Configure: func(o *server.Options) {
		o.TLSConfig = tc
		o.TLS = true
		o.TLSTimeout = 2
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	url := strings.Replace(n.URL(), "nats://", "tls://", 1)
	nc, js, err := natsconn.Connect(url, natsconn.Options{Name: "tls", CAFile: files.CA}, zap.NewNop())
	if err != nil {
		t.Fatalf("connect with the CA: %v", err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("the connection does not use TLS")
	}
	if _, err := js.AccountInfo(context.Background()); err != nil {
		t.Fatalf("JetStream over TLS: %v", err)
	}
	// Without the CA the certificate chains to no system root.
	if nc2, _, err := natsconn.Connect(n.URL(), natsconn.Options{Name: "no-ca"}, zap.NewNop()); err == nil {
		nc2.Close()
		t.Fatal("connected without trusting the server's CA")
	}
}
