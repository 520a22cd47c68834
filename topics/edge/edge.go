// Package edge is the contract of the NATS edge: the subject a notification
// is published on, edge.<region>.<channel>.<user_id>, the region's JetStream
// stream that holds those subjects, and the filters that read them.
//
// The notifier publishes on these subjects, gateways and browsers subscribe
// to them and the edge credentials grant them, so each name is built here
// and only here: a subject spelled by hand in one of those places would
// drift from the others and deliver nothing, silently.
package edge

import (
	"fmt"
	"strings"

	"backinstock/topics/events"
)

// prefix is the first token of every edge subject.
const prefix = "edge"

// Prefix is the first token of every edge subject, for code that reads
// subject patterns token by token (deploycheck judges NATS permissions).
const Prefix = prefix

// AllFilter matches every edge subject of every region: what no single
// user may ever be allowed to read.
func AllFilter() string { return prefix + ".>" }

// StreamName is the JetStream stream of one channel of a region:
// EDGE_<REGION>_<CHANNEL>, upper case with '-' as '_', because stream names
// are conventionally upper case and the region's '-' reads badly there.
// Regions differ in more than case and dashes and channels never hold '_',
// so no two (region, channel) pairs share a stream.
//
// A region's edge is one stream per channel, not one stream for the region:
// JetStream writes a stream's messages one at a time, so one stream is a
// wall for a big restock (measured in docs/benchmarks.md, "Edge streams").
// A stream per channel keeps each subject where it was (ChannelFilter is
// what a stream holds and what its gateway reads), and a notification's
// Nats-Msg-Id still meets its duplicate window: a notification has one
// channel, so it always goes to the same stream.
func StreamName(region, channel string) string {
	return LegacyStreamName(region) + "_" + strings.ToUpper(channel)
}

// Streams are the edge streams of region, one per channel, in
// events.ChannelNames order.
func Streams(region string) []string {
	out := make([]string, 0, len(events.ChannelNames()))
	for _, ch := range events.ChannelNames() {
		out = append(out, StreamName(region, ch))
	}
	return out
}

// LegacyStreamName is the one stream a region's edge had before it was
// split per channel: EDGE_<REGION>, holding RegionFilter. The notifier
// refuses to start while it exists (its subjects overlap the channel
// streams'); docs/runbooks.md says how to retire it.
func LegacyStreamName(region string) string {
	return "EDGE_" + strings.ToUpper(strings.ReplaceAll(region, "-", "_"))
}

// Subject is where the notification of userID on channel in region goes.
// It does not validate: the notifier builds one per message from fields
// events.DecodeNotification has already checked, and ids exclude '.', '*'
// and '>' (events.IDPattern), so the four tokens stay four.
func Subject(region, channel, userID string) string {
	return prefix + "." + region + "." + channel + "." + userID
}

// ParseSubject splits an edge subject into its parts. It is strict (exactly
// four tokens, the "edge" prefix, and a region, channel and user id each
// valid per topics/events), so that a subject it accepts is one Subject
// builds from the same parts.
func ParseSubject(subject string) (region, channel, userID string, err error) {
	parts := strings.Split(subject, ".")
	if len(parts) != 4 || parts[0] != prefix {
		return "", "", "", fmt.Errorf("parse edge subject %q: want %s.<region>.<channel>.<user_id>", subject, prefix)
	}
	region, channel, userID = parts[1], parts[2], parts[3]
	switch {
	case !events.ValidRegion(region):
		return "", "", "", fmt.Errorf("parse edge subject %q: region must match %s", subject, events.RegionPattern)
	case !events.ValidChannel(channel):
		return "", "", "", fmt.Errorf("parse edge subject %q: channel must be one of %s", subject, strings.Join(events.ChannelNames(), ", "))
	case !events.ValidID(userID):
		return "", "", "", fmt.Errorf("parse edge subject %q: user id must match %s", subject, events.IDPattern)
	}
	return region, channel, userID, nil
}

// RegionFilter matches every subject of region: what its streams hold
// together, so a region's edge is independent of the others.
func RegionFilter(region string) string {
	return prefix + "." + region + ".>"
}

// ChannelFilter matches the subjects of one channel in region: what the
// channel's stream holds and what its consumer (a channel gateway) reads,
// so each gateway sees only its own channel's notifications.
func ChannelFilter(region, channel string) string {
	return prefix + "." + region + "." + channel + ".>"
}

// GatewayConsumer is the durable JetStream consumer through which the
// gateways of a region read channel from the channel's stream, with
// ChannelFilter as its filter. One name per channel, shared by every gateway
// replica of the region: the server spreads the messages over whoever pulls,
// and a replica that starts again resumes where the consumer is. The stream
// is per region and channel, so the name need not say either. Consumer
// names may not hold '.', '*', '>' or spaces; a channel never does.
func GatewayConsumer(channel string) string {
	return "gateway-" + channel
}

// UserFilter matches the subjects of userID in every region and channel: the
// only subjects a user's credentials may read, so a browser sees its own
// notifications wherever they were sent and nobody else's.
func UserFilter(userID string) string {
	return prefix + ".*.*." + userID
}
