// Package edge publishes notifications to the region's JetStream stream,
// the last hop before gateways and browsers. The stream's and the subjects'
// names are the contract in topics/edge. Every message carries
// Nats-Msg-Id = notification_id, so the stream's duplicate window drops a
// re-publish after a crash between publish and the Redis marker (the first
// layer of invariant 2).
package edge

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"backinstock/shared/backoff"
	topicsedge "backinstock/topics/edge"
)

// StreamOptions size the region's edge stream.
type StreamOptions struct {
	// Duplicates is the de-duplication window: a crash-and-replay within it
	// cannot reach the edge twice even if Redis lost its markers.
	Duplicates time.Duration
	// MaxAge bounds how long messages stay (at least Duplicates, so the window
	// survives a server restart, which rebuilds it from stored messages).
	MaxAge   time.Duration
	MaxBytes int64
	Replicas int
}

// StreamConfig is the stream the notifier creates or updates at start.
func StreamConfig(region string, o StreamOptions) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        topicsedge.StreamName(region),
		Description: "backinstock notifications for " + region + " (" + topicsedge.RegionFilter(region) + ")",
		Subjects:    []string{topicsedge.RegionFilter(region)},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  o.Duplicates,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		Replicas:    max(1, o.Replicas),
	}
}

// EnsureStream creates the stream or updates it to the configuration.
func EnsureStream(ctx context.Context, js jetstream.JetStream, region string, o StreamOptions) (jetstream.Stream, error) {
	if o.MaxAge > 0 && o.MaxAge < o.Duplicates {
		return nil, fmt.Errorf("edge stream %s: max age %s is shorter than the duplicate window %s", topicsedge.StreamName(region), o.MaxAge, o.Duplicates)
	}
	// Replicas starting together can meet a transient JetStream error (seen:
	// "error creating store for stream", err_code 10049) or a server that is
	// still starting; retry until ctx's deadline instead of exiting.
	// Each attempt has its own timeout: a request sent while the connection
	// is re-established can go unanswered, and must not use up the deadline.
	wait := backoff.New(100*time.Millisecond, 2*time.Second)
	for {
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		s, err := js.CreateOrUpdateStream(actx, StreamConfig(region, o))
		cancel()
		if err == nil {
			return s, nil
		}
		if !wait.Wait(ctx) {
			return nil, fmt.Errorf("create or update edge stream %s: %w", topicsedge.StreamName(region), err)
		}
	}
}
