package e2eenv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"backinstock/shared/edgecheck"
	"backinstock/shared/natsconn"
)

// Edge reads what reached the NATS edge, with a service user's credentials,
// as a channel gateway would.
type Edge struct {
	NC *nats.Conn
	JS jetstream.JetStream
}

// ConnectEdge connects to the stack's NATS (reconnecting forever, so it
// outlives a NATS outage).
func (s *Stack) ConnectEdge() (*Edge, error) {
	nc, js, err := natsconn.Connect(s.NATS.URL(), natsconn.Options{Name: "e2eenv", CredsFile: s.ClientCreds}, zap.NewNop())
	if err != nil {
		return nil, err
	}
	return &Edge{NC: nc, JS: js}, nil
}

// Close closes the connection.
func (e *Edge) Close() { e.NC.Close() }

// Mark is where a region's edge streams stood (edgecheck.Mark).
type Mark = edgecheck.Mark

// State is how many messages the region's edge streams hold and where they
// stand; Collect and WaitCount take the mark as a baseline.
func (e *Edge) State(ctx context.Context, region string) (msgs uint64, last Mark, err error) {
	st, err := edgecheck.Read(ctx, e.JS, region)
	return st.Msgs, st.Last, err
}

// Delivered, Counts and Tally live in shared/edgecheck, which the notifier
// bench shares; these names keep the e2e code as it was.
type (
	Delivered = edgecheck.Delivered
	Counts    = edgecheck.Counts
)

// Tally compares what reached the edge with the expected notification ids.
func Tally(scenario string, expected map[string]bool, got []Delivered) Counts {
	return edgecheck.Tally(scenario, expected, got)
}

// Collect reads the region's streams after mark (nil: everything) up to
// where they are at the time of the call, keeping what keep accepts (nil:
// all); see edgecheck.Collect.
func (e *Edge) Collect(ctx context.Context, region string, after Mark, keep func(*Delivered) bool) ([]Delivered, error) {
	return edgecheck.Collect(ctx, e.JS, region, after, keep)
}

// ErrTimeout marks a wait that ran out.
var ErrTimeout = errors.New("timed out")

// WaitCount polls the region's streams until at least n messages arrived
// after baseline (a State taken before), or timeout passes.
func (e *Edge) WaitCount(ctx context.Context, region string, baseline Mark, n uint64, timeout time.Duration) (uint64, error) {
	deadline := time.Now().Add(timeout)
	var got uint64
	for {
		_, last, err := e.State(ctx, region)
		if err == nil {
			got = last.Total() - baseline.Total()
			if got >= n {
				return got, nil
			}
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%w: %d of %d notifications at the edge of %s after %s", ErrTimeout, got, n, region, timeout)
		}
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// WaitQuiet waits until the region's streams have not grown for quiet, so
// late duplicates or stragglers would have been seen, or timeout passes.
func (e *Edge) WaitQuiet(ctx context.Context, region string, quiet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last uint64
	since := time.Now()
	for {
		_, l, err := e.State(ctx, region)
		if err == nil && l.Total() != last {
			last, since = l.Total(), time.Now()
		}
		if time.Since(since) >= quiet {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%w: edge streams of %s still growing after %s", ErrTimeout, region, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
