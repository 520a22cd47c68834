// Package aggkeys is the one home of the Redis keys that the engagement
// service's consumers write and its reports read: the attribution consumer
// writes the attributed orders, the report consumer the delivery and click
// aggregates, and the reports API reads both. Writers and reader agree on
// the layout here so neither has to know the other's code.
//
// Every aggregate is a hash per SKU, region, channel and UTC day. The SKU is
// the hash tag, so one SKU's keys (and the markers that make an increment
// idempotent, which writers keep under the same tag) share a cluster slot and
// one Lua script can touch them together.
package aggkeys

import (
	"strings"
	"time"
)

// DayLayout is the layout of a day bucket: UTC, year month day.
const DayLayout = "20060102"

// Day is the UTC day bucket t falls in.
func Day(t time.Time) string { return t.UTC().Format(DayLayout) }

// Attribution is the hash of the order lines attributed to notifications
// of sku in region on channel, bucketed by the UTC day the order was
// placed (its ordered_at, not when it was processed, so a replay lands in
// the same bucket). Fields: DirectOrders, DirectUnits, DirectRevenue(cur),
// AssistedOrders, AssistedUnits, AssistedRevenue(cur).
func Attribution(sku, region, channel, day string) string {
	return "engagement:attr:{" + sku + "}:" + region + ":" + channel + ":" + day
}

// AttributionIndex is the set of IndexMember(sku, region, channel) that
// have at least one Attribution hash; a report lists it instead of
// scanning keys. It may hold members whose hashes expired: readers treat
// a missing hash as zeros.
const AttributionIndex = "engagement:attr:index"

// Fields of an Attribution hash. An order line is attributed direct or
// assisted, never both; *_orders counts order lines, *_units their
// quantities, and the revenue fields sum quantity × unit price in the
// currency's minor units (cents), one field per currency.
const (
	DirectOrders   = "direct_orders"
	DirectUnits    = "direct_units"
	AssistedOrders = "assisted_orders"
	AssistedUnits  = "assisted_units"
)

// DirectRevenue is the field of the direct revenue in currency (ISO 4217,
// upper case), in minor units.
func DirectRevenue(currency string) string { return "direct_revenue:" + currency }

// AssistedRevenue is the field of the assisted revenue in currency (ISO
// 4217, upper case), in minor units.
func AssistedRevenue(currency string) string { return "assisted_revenue:" + currency }

// RevenueCurrency reports whether field is a revenue field, which kind
// ("direct" or "assisted") and its currency.
func RevenueCurrency(field string) (kind, currency string, ok bool) {
	kind, currency, ok = strings.Cut(field, "_revenue:")
	if !ok || (kind != "direct" && kind != "assisted") || currency == "" {
		return "", "", false
	}
	return kind, currency, true
}

// IndexMember is a member of an index set. SKUs and regions cannot hold
// '|' (events.IDPattern, events.RegionPattern), nor can channels.
func IndexMember(sku, region, channel string) string {
	return sku + "|" + region + "|" + channel
}

// ParseIndexMember splits an IndexMember.
func ParseIndexMember(m string) (sku, region, channel string, ok bool) {
	parts := strings.Split(m, "|")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", false
	}
	return parts[0], parts[1], parts[2], true
}

// The report consumer's keys (internal/reports). Every one of them starts
// with ReportPrefix, so `engagement rebuild` can wipe them all (and only
// them: the attribution hashes above are the attribution consumer's) with
// one SCAN.
const ReportPrefix = "engagement:rep:"

// Report is the hash of the delivery and click aggregates of notifications
// of sku in region on channel, bucketed by the UTC day of each event's own
// time (so a replay lands in the same bucket). Fields: Notified,
// Delivered, Failed, Suppressed, Clicks, UniqueClicks and, per UTC hour of
// the delivery, LagCount(hh), LagSumMS(hh), LagMaxMS(hh); LagUnmatched
// counts deliveries whose restock has not been read yet (LagPending).
func Report(sku, region, channel, day string) string {
	return ReportPrefix + "{" + sku + "}:" + region + ":" + channel + ":" + day
}

// Fields of a Report hash. Each counts notifications once (the first
// event of its kind for the notification), except Clicks, which counts
// every follow of a link.
const (
	Notified     = "notified"
	Delivered    = "delivered"
	Failed       = "failed"
	Suppressed   = "suppressed"
	Clicks       = "clicks"
	UniqueClicks = "unique_clicks"
	LagUnmatched = "lag_unmatched"
)

// LagCount is the field counting the deliveries of UTC hour hh ("00" to
// "23") whose restock → delivery lag is in LagSumMS and LagMaxMS.
func LagCount(hh string) string { return "lag_count:" + hh }

// LagSumMS is the field summing the restock → delivery lags of hour hh, ms.
func LagSumMS(hh string) string { return "lag_sum_ms:" + hh }

// LagMaxMS is the field holding the longest restock → delivery lag of hour hh, ms.
func LagMaxMS(hh string) string { return "lag_max_ms:" + hh }

// ReportIndex is the set of IndexMember(sku, region, channel) that have
// Report hashes or waiting wishlisters. Like AttributionIndex, a member
// whose hashes expired reads as zeros.
const ReportIndex = ReportPrefix + "index"

// Restocks is the hash (field "restocks") counting the restocks of sku in
// region on the UTC day they occurred. Restocks are per SKU and region,
// not per channel.
func Restocks(sku, region, day string) string {
	return ReportPrefix + "restocks:{" + sku + "}:" + region + ":" + day
}

// RestocksField is the one field of a Restocks hash.
const RestocksField = "restocks"

// RestockTimes is the sorted set of the restock episodes of sku in region
// (member: the episode, score: when it occurred, Unix ms): the marker that
// counts each restock once, and what a delivery's lag is measured from
// (the latest restock at or before the delivery).
func RestockTimes(sku, region string) string {
	return ReportPrefix + "restock-at:{" + sku + "}:" + region
}

// LagPending is the sorted set of sku's deliveries in region whose restock
// the report consumer had not read yet (the topics are read side by side,
// so a backlog can hand a delivery before its restock): member
// "<hh>|<notification id>|<Report key>", score the delivery time (Unix
// ms). The restock, when it comes, adds their lags and removes them.
func LagPending(sku, region string) string {
	return ReportPrefix + "lag-pending:{" + sku + "}:" + region
}

// NotificationState is the hash of what the report consumer has counted
// of one notification: fields n (notified), d (delivered), f (failed), s
// (suppressed), c (clicked), each set once with the time of its first
// event. It is what makes a redelivered or replayed status change nothing.
func NotificationState(sku, notificationID string) string {
	return ReportPrefix + "note:{" + sku + "}:" + notificationID
}

// ClickSeen marks one click event as counted (every click has its own
// event id; a replay carries the same one).
func ClickSeen(sku, eventID string) string {
	return ReportPrefix + "click:{" + sku + "}:" + eventID
}

// Wishes is the hash of sku's current wishlist entries as the report
// consumer has read them from wishlist.changes.v1: field user id, value
// WishValue(region, channels). A change is applied as the difference to
// the entry it replaces, so the same change read twice changes nothing.
func Wishes(sku string) string { return ReportPrefix + "wishes:{" + sku + "}" }

// WishValue is the value of a Wishes field.
func WishValue(region string, channels []string) string {
	return region + "|" + strings.Join(channels, ",")
}

// Waiting is the hash of sku's waiting wishlisters: field
// WaitingField(region, channel) counts those who chose channel,
// WaitingUsersField(region) the distinct users.
func Waiting(sku string) string { return ReportPrefix + "waiting:{" + sku + "}" }

// WaitingField is the field of the wishlisters of region who chose channel.
func WaitingField(region, channel string) string { return region + "|" + channel }

// WaitingUsersField is the field of region's distinct wishlisters.
func WaitingUsersField(region string) string { return region }

// Stock is the hash of sku's stock as read from inventory.stock.v1: field
// region, value StockValue.
func Stock(sku string) string { return ReportPrefix + "stock:{" + sku + "}" }

// SoldOut is the set of SoldOutMember(sku, region) whose last stock level
// was 0: the demand report's candidates (it checks each against Stock).
const SoldOut = ReportPrefix + "soldout"

// SoldOutMember is a member of SoldOut.
func SoldOutMember(sku, region string) string { return sku + "|" + region }

// ParseSoldOutMember splits a SoldOutMember.
func ParseSoldOutMember(m string) (sku, region string, ok bool) {
	sku, region, ok = strings.Cut(m, "|")
	if !ok || sku == "" || region == "" || strings.Contains(region, "|") {
		return "", "", false
	}
	return sku, region, true
}
