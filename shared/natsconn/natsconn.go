// Package natsconn connects to NATS from NATS_URL with the credentials the
// deployment provides (a .creds file, a token, or user:password in the URL),
// reconnecting forever: the edge going away is a pause, not a crash. Drain
// closes such a connection without losing what it still holds.
package natsconn

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Options beyond the URL.
type Options struct {
	Name      string
	CredsFile string // NATS_CREDS: user JWT + NKey seed
	Token     string // NATS_TOKEN
	// CAFile is a PEM CA bundle (NATS_TLS_CA_FILE) the server's TLS
	// certificate must chain to; empty trusts the system roots. nats.go
	// upgrades to TLS whenever the server requires it (or the URL is
	// tls://), so this is all a client of a TLS port needs.
	CAFile string
}

// Connect dials url and returns the connection and its JetStream context.
func Connect(url string, o Options, log *zap.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.RetryOnFailedConnect(false),
		nats.Timeout(5 * time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { log.Warn("nats disconnected", zap.Error(err)) }),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", zap.String("url", c.ConnectedUrlRedacted())) }),
		nats.ErrorHandler(func(_ *nats.Conn, s *nats.Subscription, err error) {
			subj := ""
			if s != nil {
				subj = s.Subject
			}
			log.Warn("nats async error", zap.String("subject", subj), zap.Error(err))
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.CAFile != "" {
		opts = append(opts, nats.RootCAs(o.CAFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to nats %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("jetstream: %w", err)
	}
	return nc, js, nil
}

// Drain drains nc and returns once it is closed, or after timeout (then it
// closes nc and says so). nats.go's Drain only starts the drain (the
// subscriptions' handlers finish the messages they hold, then the buffered
// publishes are flushed) and returns at once; a process that exits right
// after it loses whatever was still in flight. Errors the drain meets go to
// nats.go's async error handler; while draining they are returned here
// instead, so they are not logged twice.
func Drain(nc *nats.Conn, timeout time.Duration) error {
	closed := make(chan struct{})
	var once sync.Once
	var mu sync.Mutex
	var errs []error
	prevClosed := nc.ClosedHandler()
	nc.SetErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	})
	nc.SetClosedHandler(func(c *nats.Conn) {
		if prevClosed != nil {
			prevClosed(c)
		}
		once.Do(func() { close(closed) })
	})
	if err := nc.Drain(); err != nil {
		return fmt.Errorf("drain nats: %w", err)
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-closed:
	case <-t.C:
		nc.Close()
		return fmt.Errorf("drain nats: not closed within %s", timeout)
	}
	// The closed callback runs after every error the drain pushed (nats.go
	// calls them in order), so errs is complete.
	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("drain nats: %w", errors.Join(errs...))
	}
	return nil
}
