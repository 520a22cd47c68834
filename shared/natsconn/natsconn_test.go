package natsconn_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
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
