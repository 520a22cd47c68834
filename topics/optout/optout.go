// Package optout is the contract of a user's opt-out record: the Redis key
// and value the wishlist writes with every change of the user's
// preferences, before it answers 2xx, and the notifier and the gateway read
// right before the edge and right before the provider, so a notification
// already queued in Kafka, held for quiet hours or waiting in the edge
// stream is not delivered after an unsubscribe (docs/delivery-semantics.md,
// "Opt-outs honoured late").
//
//	key    optout:{<user_id>}
//	value  "all"                   the user unsubscribed from everything
//	       "<channel>,<channel>"   the user opted out of these channels
//	                               (canonical order, events.ChannelNames)
//	none   nothing opted out (the key is deleted, not written empty)
//
// The hash tag is the user id alone, the same as the wishlist's user hash
// (wl:{<user_id>}:user), so one MULTI writes the preferences and the
// record on a Redis Cluster too. The record is a copy of what the
// preferences say (unsubscribed, opt_out), small enough that a notifier
// reads a batch's worth in one pipelined round trip.
//
// The package imports no Redis client: the reader lives in shared/optoutcheck
// and the writer in the wishlist's store.
package optout

import (
	"fmt"
	"slices"
	"strings"

	"backinstock/topics/events"
)

// All is the value of a user unsubscribed from every channel.
const All = "all"

// Reasons a notification is suppressed: metric labels and receipt reasons
// start with them.
const (
	ReasonUnsubscribed = "unsubscribed"
	ReasonOptedOut     = "opted_out"
	// ReasonUnreadable: the record is there but malformed. A reader
	// suppresses then: sending to someone who may have asked us to stop is
	// the worse mistake, and the record's writer is the bug to fix.
	ReasonUnreadable = "unreadable"
)

// Key is the Redis key of userID's record.
func Key(userID string) string { return "optout:{" + userID + "}" }

// State is what a user opted out of. The zero State opts out of nothing.
type State struct {
	// All: unsubscribed, every channel suppressed.
	All bool
	// Channels opted out of, in canonical order (when not All).
	Channels []string
	// Unreadable: a record that did not parse (see ReasonUnreadable).
	Unreadable bool
}

// Of is the state a user's preferences say: unsubscribed, or the channels
// of optOut (unknown names ignored: preferences are validated before they
// are stored).
func Of(unsubscribed bool, optOut []string) State {
	if unsubscribed {
		return State{All: true}
	}
	var chans []string
	for _, c := range events.ChannelNames() {
		if slices.Contains(optOut, c) {
			chans = append(chans, c)
		}
	}
	return State{Channels: chans}
}

// None reports whether the state suppresses nothing: the record is
// deleted rather than written.
func (s State) None() bool { return !s.All && !s.Unreadable && len(s.Channels) == 0 }

// Format is the record's value ("" for None: delete the key).
func (s State) Format() string {
	if s.All || s.Unreadable {
		return All
	}
	return strings.Join(s.Channels, ",")
}

// Parse reads a record's value.
func Parse(v string) (State, error) {
	if v == All {
		return State{All: true}, nil
	}
	if v == "" {
		return State{}, fmt.Errorf("opt-out record: empty (an opt-out of nothing is no record)")
	}
	parts := strings.Split(v, ",")
	for i, c := range parts {
		if !events.ValidChannel(c) {
			return State{}, fmt.Errorf("opt-out record %q: entry %d must be %q or one of %s, got %q", v, i+1, All, strings.Join(events.ChannelNames(), ", "), c)
		}
		if slices.Contains(parts[:i], c) {
			return State{}, fmt.Errorf("opt-out record %q: channel %q listed twice", v, c)
		}
	}
	return Of(false, parts), nil
}

// Suppresses reports whether a notification on channel must not go out,
// and why (one of the Reason constants).
func (s State) Suppresses(channel string) (reason string, ok bool) {
	switch {
	case s.Unreadable:
		return ReasonUnreadable, true
	case s.All:
		return ReasonUnsubscribed, true
	case slices.Contains(s.Channels, channel):
		return ReasonOptedOut, true
	}
	return "", false
}

// Describe is a receipt's reason for a suppression: the reason code and,
// for an opt-out, the channel.
func Describe(reason, channel string) string {
	switch reason {
	case ReasonOptedOut:
		return reason + ": the user opted out of " + channel
	case ReasonUnsubscribed:
		return reason + ": the user unsubscribed from every notification"
	}
	return reason + ": the user's opt-out record is malformed; suppressed to be safe"
}
