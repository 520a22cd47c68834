// Package edge publishes notifications to the region's JetStream streams
// (one per channel), the last hop before gateways and browsers. The
// streams' and the subjects' names are the contract in topics/edge. Every
// message carries Nats-Msg-Id = notification_id, so its stream's duplicate
// window drops a re-publish after a crash between publish and the Redis
// marker (the first layer of invariant 2).
package edge

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"backinstock/shared/backoff"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

// StreamOptions size the region's edge stream.
type StreamOptions struct {
	// Duplicates is the de-duplication window: a crash-and-replay within it
	// cannot reach the edge twice even if Redis lost its markers.
	Duplicates time.Duration
	// MaxAge bounds how long messages stay (at least Duplicates, so the window
	// survives a server restart, which rebuilds it from stored messages).
	MaxAge time.Duration
	// MaxBytes caps the region's edge, split evenly over its channel streams.
	MaxBytes int64
	Replicas int
}

// StreamConfig is the stream of one channel of region that the notifier
// creates or updates at start.
func StreamConfig(region, channel string, o StreamOptions) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:        topicsedge.StreamName(region, channel),
		Description: "backinstock " + channel + " notifications for " + region + " (" + topicsedge.ChannelFilter(region, channel) + ")",
		Subjects:    []string{topicsedge.ChannelFilter(region, channel)},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Duplicates:  o.Duplicates,
		MaxAge:      o.MaxAge,
		MaxBytes:    channelShare(o.MaxBytes),
		Replicas:    max(1, o.Replicas),
	}
}

// channelShare is one channel stream's part of the region's size cap: the
// cap is split evenly, so the region's edge takes no more disk (and reserves
// no more of the server's JetStream storage) than its one stream did.
func channelShare(maxBytes int64) int64 {
	if maxBytes <= 0 {
		return maxBytes // unlimited
	}
	return max(1, maxBytes/int64(len(events.ChannelNames())))
}

// ErrLegacyStream: the region still has its one stream of before the split
// per channel, whose subjects overlap the channel streams'.
var ErrLegacyStream = errors.New("the region's single edge stream still exists")

// EnsureStreams creates the region's edge streams, one per channel, or
// updates them to the configuration. Every channel gets its stream, whichever
// channels this notifier publishes, so each channel's gateway finds its
// stream.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, region string, o StreamOptions) error {
	if o.MaxAge > 0 && o.MaxAge < o.Duplicates {
		return fmt.Errorf("edge streams of %s: max age %s is shorter than the duplicate window %s", region, o.MaxAge, o.Duplicates)
	}
	// Replicas starting together can meet a transient JetStream error (seen:
	// "error creating store for stream", err_code 10049) or a server that is
	// still starting; retry until ctx's deadline instead of exiting.
	// Each attempt has its own timeout: a request sent while the connection
	// is re-established can go unanswered, and must not use up the deadline.
	wait := backoff.New(100*time.Millisecond, 2*time.Second)
	attempt := func(f func(context.Context) error) error {
		for {
			actx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := f(actx)
			cancel()
			if err == nil || errors.Is(err, ErrLegacyStream) || !wait.Wait(ctx) {
				return err
			}
		}
	}
	legacy := topicsedge.LegacyStreamName(region)
	err := attempt(func(ctx context.Context) error {
		_, err := js.Stream(ctx, legacy)
		switch {
		case err == nil:
			return fmt.Errorf("%w: %s holds %s, which the streams per channel (%s) would overlap; retire it first (docs/runbooks.md, \"Edge streams per channel\")",
				ErrLegacyStream, legacy, topicsedge.RegionFilter(region), strings.Join(topicsedge.Streams(region), ", "))
		case errors.Is(err, jetstream.ErrStreamNotFound):
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("edge streams of %s: %w", region, err)
	}
	for _, ch := range events.ChannelNames() {
		cfg := StreamConfig(region, ch, o)
		err := attempt(func(ctx context.Context) error {
			_, err := js.CreateOrUpdateStream(ctx, cfg)
			return err
		})
		if err != nil {
			return fmt.Errorf("create or update edge stream %s: %w", cfg.Name, err)
		}
	}
	return nil
}
