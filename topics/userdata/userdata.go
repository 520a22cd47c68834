// Package userdata is the contract of where the notifier and the gateway
// keep a person's data in Redis: the key builders their stores write with
// and the patterns and parser the wishlist's export and erasure
// (GET /v1/users/{user_id}/export, DELETE /v1/users/{user_id}) find them
// with. Written once here, so a store that changes its layout changes what
// the erasure looks for (services never import each other's internals).
//
//	ntf:{<region>|<user_id>}:sent:<notification_id>       notifier: sent marker "1", EX marker TTL
//	ntf:{<region>}:held                                    notifier: ZSET notification id -> release time (ms)
//	ntf:{<region>}:held:data                               notifier: HASH notification id -> Notification JSON
//	gwy:{<region>|<user_id>}:delivered:<notification_id>  gateway: "claim:<token>" while sending, then the delivered marker JSON
//	gwy:{<region>|<user_id>}:devices:<notification_id>    gateway: HASH device id -> provider message id
//
// The per-user keys carry the user in their hash tag, so a SCAN with
// UserPatterns finds them all; the held set is per region (one script moves
// a notification in and out atomically), so a user's held notifications are
// found by the user_id of their payloads.
package userdata

import "strings"

// Services and kinds of the per-user keys.
const (
	ServiceNotifier = "notifier"
	ServiceGateway  = "gateway"

	// KindSent is the notifier's sent marker.
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

// NotifierSentKey is the notifier's sent marker of one notification.
func NotifierSentKey(region, userID, notificationID string) string {
	return userTag(notifierPrefix, region, userID) + KindSent + ":" + notificationID
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
// in any region. userID must be an id (events.ValidID: no glob characters,
// no '|'), so "*|<user>}" cannot match another user's tag.
func UserPatterns(userID string) []string {
	return []string{
		notifierPrefix + "{*|" + userID + "}:*",
		gatewayPrefix + "{*|" + userID + "}:*",
	}
}

// Key is a parsed per-user key.
type Key struct {
	Service, Kind, Region, UserID, NotificationID string
}

// ParseKey reads a per-user key; ok is false for any other key (the held
// keys included), so a SCAN match that is not one of ours is left alone.
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
