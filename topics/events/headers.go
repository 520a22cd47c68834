package events

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Kafka record header keys. Every record carries all three so that a reader
// (kcat, a consumer in another language, the dead-letter inspector) knows how
// to read the value and which trace it belongs to without guessing.
const (
	HeaderContentType = "content-type"
	HeaderSchema      = "schema"
	HeaderTraceparent = "traceparent"
)

// Dead-letter header keys. The consumer-group runner (shared/kafka) writes
// the first five on every record it produces to deadletter.v1, after the
// source record's own headers; `topics deadletter` reads them. They are
// contracts (the alerts and runbooks name them), so they are spelled here
// once.
const (
	HeaderDLQTopic     = "dlq-source-topic"     // the topic the record was read from
	HeaderDLQPartition = "dlq-source-partition" // its partition, decimal
	HeaderDLQOffset    = "dlq-source-offset"    // its offset, decimal
	HeaderDLQGroup     = "dlq-group"            // the consumer group that rejected it
	HeaderDLQReason    = "dlq-reason"           // why, e.g. the validation error naming the field

	// HeaderRedrives counts how often a record was redriven from the dead
	// letters to its source topic (decimal; absent means never). A record
	// dead-lettered again carries it into deadletter.v1 with its other
	// headers, so `topics deadletter redrive` can refuse one beyond its
	// --max-redrives.
	HeaderRedrives = "dlq-redrives"
	// HeaderRedriveOf marks a redriven copy with the position of the record
	// it copies, "<partition>:<offset>" in the same topic: what makes a
	// redrive idempotent (the tool looks for it in the partition before
	// writing a copy).
	HeaderRedriveOf = "dlq-redrive-of"
)

// ContentTypeJSON is the content-type of every event value.
const ContentTypeJSON = "application/json"

// Schema names: the value schemas of the catalogue and the file names of the
// JSON Schemas (schemas/<name>.schema.json).
const (
	SchemaRestockEvent   = "RestockEvent"
	SchemaStockLevel     = "StockLevel"
	SchemaWishlistChange = "WishlistChange"
	SchemaNotification   = "Notification"
	// SchemaWishlistPreferences is the second value schema of
	// wishlist.changes.v1, under the keys "<user_id>|~prefs".
	SchemaWishlistPreferences = "WishlistPreferences"
	// SchemaDeliveryStatus is the value schema of delivery.status.v1.
	SchemaDeliveryStatus = "DeliveryStatus"
	// SchemaWebhookEvent is the body of the gateway's webhook deliveries
	// (an HTTP contract with shops, on no topic).
	SchemaWebhookEvent = "WebhookEvent"
	// SchemaClickEvent is the value schema of engagement.clicks.v1.
	SchemaClickEvent = "ClickEvent"
	// SchemaOrder is the value schema of orders.v1.
	SchemaOrder = "Order"
)

// SchemaVersion is the version of the schemas in this module, written in the
// schema header. It moves with the topic version (.v1): a change that is not
// backward compatible gets a new topic, not a new value on the old one.
const SchemaVersion = 1

// SchemaNames returns the known schema names in a fresh slice.
func SchemaNames() []string {
	return []string{SchemaRestockEvent, SchemaStockLevel, SchemaWishlistChange, SchemaNotification, SchemaWishlistPreferences, SchemaDeliveryStatus, SchemaWebhookEvent, SchemaClickEvent, SchemaOrder}
}

// KnownSchema reports whether name is one of SchemaNames.
func KnownSchema(name string) bool {
	switch name {
	case SchemaRestockEvent, SchemaStockLevel, SchemaWishlistChange, SchemaNotification, SchemaWishlistPreferences, SchemaDeliveryStatus, SchemaWebhookEvent, SchemaClickEvent, SchemaOrder:
		return true
	}
	return false
}

// SchemaHeader is the schema header value for the named schema at
// SchemaVersion, e.g. "RestockEvent/1".
func SchemaHeader(name string) string {
	return name + "/" + strconv.Itoa(SchemaVersion)
}

// ParseSchemaHeader splits a schema header value such as "RestockEvent/1".
func ParseSchemaHeader(v string) (name string, version int, err error) {
	name, ver, ok := strings.Cut(v, "/")
	if !ok || !KnownSchema(name) {
		return "", 0, fmt.Errorf("schema header %s: want <Name>/<version> with Name one of %s", quote(v), strings.Join(SchemaNames(), ", "))
	}
	version, err = strconv.Atoi(ver)
	if err != nil || version < 1 {
		return "", 0, fmt.Errorf("schema header %s: version must be a positive integer", quote(v))
	}
	return name, version, nil
}

// Header is one record header. It is a plain pair so this package does not
// depend on a Kafka client; the kafka plumbing converts it.
type Header struct {
	Key   string
	Value string
}

// Headers returns the headers of a record whose value has the named schema.
// An empty or invalid traceparent starts a new trace.
func Headers(schema, traceparent string) []Header {
	if !ValidTraceparent(traceparent) {
		traceparent = NewTraceparent()
	}
	return []Header{
		{Key: HeaderContentType, Value: ContentTypeJSON},
		{Key: HeaderSchema, Value: SchemaHeader(schema)},
		{Key: HeaderTraceparent, Value: traceparent},
	}
}

// NewTraceparent starts a W3C trace: version 00, a random trace id and span
// id, sampled.
func NewTraceparent() string {
	var b [24]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
		if !allZero(b[:16]) && !allZero(b[16:]) {
			break
		}
	}
	return "00-" + hex.EncodeToString(b[:16]) + "-" + hex.EncodeToString(b[16:]) + "-01"
}

// ChildTraceparent continues parent's trace with a new span id, so the
// notifications of one restock share the restock's trace id. An invalid
// parent starts a new trace.
func ChildTraceparent(parent string) string {
	if !ValidTraceparent(parent) {
		return NewTraceparent()
	}
	var span [8]byte
	for {
		_, _ = rand.Read(span[:])
		if !allZero(span[:]) {
			break
		}
	}
	return "00-" + parent[3:35] + "-" + hex.EncodeToString(span[:]) + "-" + parent[53:55]
}

// ValidTraceparent reports whether s is a W3C traceparent: version 00 exactly
// as specified, or a later version (not ff) whose first four fields have the
// version-00 shape, as the spec asks readers to accept.
func ValidTraceparent(s string) bool {
	if len(s) < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return false
	}
	version, trace, span, flags := s[0:2], s[3:35], s[36:52], s[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(trace) || !lowerHex(span) || !lowerHex(flags) {
		return false
	}
	if trace == strings.Repeat("0", 32) || span == strings.Repeat("0", 16) {
		return false
	}
	if version == "00" {
		return len(s) == 55
	}
	return len(s) == 55 || s[55] == '-'
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
