package testenv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/topics/edge"
	"backinstock/topics/events"
)

// NATSOptions configure the embedded server.
type NATSOptions struct {
	StoreDir string
	// Port and WSPort: 0 picks free ports.
	Port, WSPort int
	// Configure, when set, adjusts the server options before start (auth, accounts).
	Configure func(*server.Options)
}

// NATS is an embedded nats-server with JetStream and websocket.
type NATS struct {
	Server *server.Server
	o      NATSOptions
}

// StartNATS starts the server and waits until it accepts connections.
func StartNATS(o NATSOptions) (*NATS, error) {
	var err error
	if o.Port == 0 {
		if o.Port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if o.WSPort == 0 {
		if o.WSPort, err = FreePort(); err != nil {
			return nil, err
		}
	}
	n := &NATS{o: o}
	return n, n.start()
}

// options are built anew for every start: nats-server rewrites the options
// it is given (operator mode fills TrustedKeys from TrustedOperators), so a
// restart with the same struct would be refused as conflicting.
func (n *NATS) options() *server.Options {
	opts := &server.Options{
		ServerName: "backinstock-test",
		Host:       "127.0.0.1",
		Port:       n.o.Port,
		JetStream:  true,
		StoreDir:   n.o.StoreDir,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 1 << 20,
		Websocket:  server.WebsocketOpts{Host: "127.0.0.1", Port: n.o.WSPort, NoTLS: true},
	}
	if n.o.Configure != nil {
		n.o.Configure(opts)
	}
	return opts
}

func (n *NATS) start() error {
	s, err := server.NewServer(n.options())
	if err != nil {
		return fmt.Errorf("nats-server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return errors.New("nats-server: not ready within 15s")
	}
	n.Server = s
	return nil
}

// URL is the client URL.
func (n *NATS) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.o.Port) }

// WSURL is the websocket URL browsers use.
func (n *NATS) WSURL() string { return fmt.Sprintf("ws://127.0.0.1:%d", n.o.WSPort) }

// Stop shuts the server down, keeping its store for Restart.
func (n *NATS) Stop() {
	if n.Server != nil {
		n.Server.Shutdown()
		n.Server.WaitForShutdown()
		n.Server = nil
	}
}

// Restart starts it again on the same ports and store.
func (n *NATS) Restart() error {
	n.Stop()
	return n.start()
}

// Close stops the server.
func (n *NATS) Close() { n.Stop() }

// CreateEdgeStreams creates region's edge streams as the notifier does (one
// per channel holding its subjects, file storage, limits retention, a
// duplicate window of an hour), for tests and benches that publish to the
// edge or read it without a notifier.
func CreateEdgeStreams(ctx context.Context, js jetstream.JetStream, region string) error {
	for _, ch := range events.ChannelNames() {
		if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: edge.StreamName(region, ch), Subjects: []string{edge.ChannelFilter(region, ch)},
			Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Duplicates: time.Hour,
		}); err != nil {
			return fmt.Errorf("create edge stream %s: %w", edge.StreamName(region, ch), err)
		}
	}
	return nil
}
