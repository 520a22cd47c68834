// Package userdata is the contract of where the notifier and the gateway
// keep a person's data in Redis: the key builders their stores write with
// and the patterns and parser the wishlist's export and erasure
// (GET /v1/users/{user_id}/export, DELETE /v1/users/{user_id}) find them
// with. Written once here, so a store that changes its layout changes what
// the erasure looks for (services never import each other's internals).
//
//	ntf:{<region>|<sku>|<episode>|<shard>}:sent:<channel>  notifier: SET of the user ids whose notification reached the edge, EX marker TTL
//	ntf:{<region>|<user_id>}:sent:<notification_id>       notifier, legacy (before the sets): "1", EX marker TTL; read by the export and erasure only
//	ntf:{<region>}:held                                    notifier: ZSET notification id -> release time (ms)
//	ntf:{<region>}:held:data                               notifier: HASH notification id -> Notification JSON
//	gwy:{<region>|<user_id>}:delivered:<notification_id>  gateway: "claim:<token>" while sending, then the delivered marker JSON
//	gwy:{<region>|<user_id>}:devices:<notification_id>    gateway: HASH device id -> provider message id
//
// The gateway's per-user keys carry the user in their hash tag, so a SCAN
// with UserPatterns finds them all. The notifier's sent markers are grouped
// per restock episode and channel (one set, one TTL, one SMISMEMBER per
// batch instead of a key and a TTL per notification); a user's markers are
// in the sets of their shard, which a SCAN with UserSentSetPattern finds.
// The held set is per region (one script moves a notification in and out
// atomically), so a user's held notifications are found by the user_id of
// their payloads.
package userdata

import (
	"strconv"
	"strings"

	"backinstock/topics/events"
)

// Services and kinds of the per-user keys.
const (
	ServiceNotifier = "notifier"
	ServiceGateway  = "gateway"

	// KindSent is the notifier's set of sent markers.
	KindSent = "sent"
	// KindDelivered is the gateway's claim, then delivered marker.
	KindDelivered = "delivered"
	// KindDevices is the gateway's per-device progress of a push.
	KindDevices = "devices"
)

const (
	notifierPrefix = "ntf:"
	gatewayPrefix  = "gwy:"
)

// GatewayClaimPrefix starts the value of a delivered key while it is a
// claim (a gateway is sending the notification now), not yet the marker.
const GatewayClaimPrefix = "claim:"

func userTag(prefix, region, userID string) string {
	return prefix + "{" + region + "|" + userID + "}:"
}

// SentShards is how many sets one episode's sent markers of one channel
// are spread over, by user: a million-subscriber restock's markers land on
// several cluster nodes, and no one set holds more than a share of them.
const SentShards = 16

// SentShard is the shard of userID's sent markers: 32-bit FNV-1a of the
// id, modulo SentShards. The notifier computes it twice per notification,
// so it is the loop hash/fnv runs, without that package's allocations.
func SentShard(userID string) int {
	h := uint32(2166136261)
	for i := 0; i < len(userID); i++ {
		h ^= uint32(userID[i])
		h *= 16777619
	}
	return int(h % SentShards)
}

// NotifierSentSetKey is the set of the user ids (of shard) whose
// notification about sku in region, restock episode, on channel reached
// the edge. The ids are events.ValidID, so '|' and ':' separate safely.
func NotifierSentSetKey(region, sku string, episode int64, channel string, shard int) string {
	return notifierPrefix + "{" + region + "|" + sku + "|" + strconv.FormatInt(episode, 10) + "|" +
		strconv.Itoa(shard) + "}:" + KindSent + ":" + channel
}

// SentSet is a parsed NotifierSentSetKey.
type SentSet struct {
	Region, SKU string
	Episode     int64
	Channel     string
	Shard       int
}

// ParseSentSetKey reads a NotifierSentSetKey; ok is false for any other
// key, and for one the notifier cannot have written (fields that are not
// valid ids, an episode below 1, a number not in its canonical form): the
// export turns the fields into a notification id.
func ParseSentSetKey(key string) (s SentSet, ok bool) {
	rest, ok := strings.CutPrefix(key, notifierPrefix+"{")
	if !ok {
		return SentSet{}, false
	}
	tag, channel, ok := strings.Cut(rest, "}:"+KindSent+":")
	parts := strings.Split(tag, "|")
	if !ok || channel == "" || len(parts) != 4 || parts[0] == "" || parts[1] == "" {
		return SentSet{}, false
	}
	ep, err1 := strconv.ParseInt(parts[2], 10, 64)
	shard, err2 := strconv.Atoi(parts[3])
	if err1 != nil || err2 != nil || shard < 0 || shard >= SentShards {
		return SentSet{}, false
	}
	s = SentSet{Region: parts[0], SKU: parts[1], Episode: ep, Channel: channel, Shard: shard}
	if !events.ValidRegion(s.Region) || !events.ValidID(s.SKU) || !events.ValidChannel(s.Channel) || s.Episode < 1 ||
		NotifierSentSetKey(s.Region, s.SKU, s.Episode, s.Channel, s.Shard) != key {
		return SentSet{}, false
	}
	return s, true
}

// UserSentSetPattern is the SCAN MATCH pattern of every sent set, in any
// region, that can hold userID: the sets of its shard.
func UserSentSetPattern(userID string) string {
	return notifierPrefix + "{*|" + strconv.Itoa(SentShard(userID)) + "}:" + KindSent + ":*"
}

// NotifierHeldKey is a region's sorted set of held notification ids.
func NotifierHeldKey(region string) string { return notifierPrefix + "{" + region + "}:held" }

// NotifierHeldDataKey is a region's hash of held notification payloads.
func NotifierHeldDataKey(region string) string { return NotifierHeldKey(region) + ":data" }

// GatewayDeliveredKey is the gateway's claim, then delivered marker, of one
// notification.
func GatewayDeliveredKey(region, userID, notificationID string) string {
	return userTag(gatewayPrefix, region, userID) + KindDelivered + ":" + notificationID
}

// GatewayDevicesKey is the gateway's record of the devices one push
// notification was accepted for.
func GatewayDevicesKey(region, userID, notificationID string) string {
	return userTag(gatewayPrefix, region, userID) + KindDevices + ":" + notificationID
}

// UserPatterns are the SCAN MATCH patterns of every per-user key of userID
// in any region: the gateway's, and the notifier's legacy sent markers.
// userID must be an id (events.ValidID: no glob characters, no '|'), so
// "*|<user>}" cannot match another user's tag.
func UserPatterns(userID string) []string {
	return []string{
		notifierPrefix + "{*|" + userID + "}:" + KindSent + ":*",
		gatewayPrefix + "{*|" + userID + "}:*",
	}
}

// LegacyNotifierSentKey is a sent marker as the notifier wrote it before
// the sets (one key per notification, "1" with the marker TTL). The
// notifier no longer reads or writes them; the export and erasure still
// find them until the last one expires, NOTIFIER_MARKER_TTL (7 days) after
// the upgrade, when this and its ParseKey branch can go.
func LegacyNotifierSentKey(region, userID, notificationID string) string {
	return userTag(notifierPrefix, region, userID) + KindSent + ":" + notificationID
}

// Key is a parsed per-user key: the gateway's, or a legacy sent marker.
type Key struct {
	Service, Kind, Region, UserID, NotificationID string
}

// ParseKey reads a per-user key; ok is false for any other key (the
// notifier's sent sets and held keys included), so a SCAN match that is not
// one of ours is left alone.
func ParseKey(key string) (k Key, ok bool) {
	switch {
	case strings.HasPrefix(key, notifierPrefix):
		k.Service = ServiceNotifier
	case strings.HasPrefix(key, gatewayPrefix):
		k.Service = ServiceGateway
	default:
		return Key{}, false
	}
	rest := key[len(notifierPrefix):] // both prefixes have four bytes
	tag, rest, ok := strings.Cut(rest, "}:")
	if !ok || !strings.HasPrefix(tag, "{") {
		return Key{}, false
	}
	k.Region, k.UserID, ok = strings.Cut(tag[1:], "|")
	if !ok || k.Region == "" || k.UserID == "" || strings.Contains(k.UserID, "|") {
		return Key{}, false
	}
	k.Kind, k.NotificationID, ok = strings.Cut(rest, ":")
	if !ok || k.NotificationID == "" {
		return Key{}, false
	}
	switch {
	case k.Service == ServiceNotifier && k.Kind == KindSent,
		k.Service == ServiceGateway && (k.Kind == KindDelivered || k.Kind == KindDevices):
		return k, true
	}
	return Key{}, false
}
