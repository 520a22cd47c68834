package events

import (
	"strings"
	"time"
)

// RestockEvent is the value of inventory.restock.v1 (key: sku): the sku went
// from sold out to available in one region. Episode counts those transitions
// per (sku, region), so the notifications of one restock are told apart from
// those of the next one, and EventID is derived from (sku, region, episode) so
// a re-published restock is the same event.
type RestockEvent struct {
	EventID          string    `json:"event_id"`
	SKU              string    `json:"sku"`
	Region           string    `json:"region"`
	Quantity         int64     `json:"quantity"`
	PreviousQuantity int64     `json:"previous_quantity"`
	Episode          int64     `json:"episode"`
	OccurredAt       time.Time `json:"occurred_at"`
	// Product carries what a notification shows, so the fan-out does not
	// need a catalogue lookup per restock.
	Product *Product `json:"product,omitempty"`
	// Delivery overrides the fan-out policy for this restock only.
	Delivery *Delivery `json:"delivery,omitempty"`
}

// Product is the part of the product a notification shows.
type Product struct {
	Title    string `json:"title"`
	URL      string `json:"url,omitempty"`
	ImageURL string `json:"image_url,omitempty"`
	// Price is a decimal string ("19.99"), never a float, so no rounding
	// happens between the shop and the shopper's phone.
	Price string `json:"price,omitempty"`
}

// Delivery modes.
const (
	// DeliveryAll notifies every wishlister, earliest first.
	DeliveryAll = "all"
	// DeliveryStockAware notifies wishlisters in proportion to the stock,
	// so a restock of 5 units does not wake a million people.
	DeliveryStockAware = "stock_aware"
)

// Delivery is a per-restock override of the fan-out policy. Zero numeric
// fields mean "the fan-out's configured default".
type Delivery struct {
	Mode string `json:"mode"`
	// PerUnit is how many wishlisters are notified per unit in stock
	// (stock_aware).
	PerUnit int `json:"per_unit,omitempty"`
	// MinStock stops the fan-out when the stock level falls below it.
	MinStock int64 `json:"min_stock,omitempty"`
	// IntervalMS spaces the waves of a stock_aware fan-out.
	IntervalMS int64 `json:"interval_ms,omitempty"`
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil. EventID must be RestockEventID(SKU, Region, Episode).
func (e RestockEvent) Validate() error {
	p := &problems{typ: SchemaRestockEvent}
	e.validate(p)
	return p.err()
}

func (e RestockEvent) validate(p *problems) {
	p.check(checkID("event_id", e.EventID))
	skuErr, regionErr := checkID("sku", e.SKU), checkRegion("region", e.Region)
	p.check(skuErr)
	p.check(regionErr)
	checkRange(p, "quantity", e.Quantity, 1, MaxQuantity)
	checkRange(p, "previous_quantity", e.PreviousQuantity, 0, MaxQuantity)
	checkMin(p, "episode", e.Episode, 1)
	if e.OccurredAt.IsZero() {
		p.add("occurred_at", "required")
	}
	if ValidID(e.EventID) && skuErr == nil && regionErr == nil && e.Episode >= 1 {
		if want := RestockEventID(e.SKU, e.Region, e.Episode); e.EventID != want {
			p.add("event_id", "must be RestockEventID(sku, region, episode) = "+want+", got "+quote(e.EventID))
		}
	}
	if e.Product != nil {
		e.Product.validate(p, "product")
	}
	if e.Delivery != nil {
		e.Delivery.validate(p, "delivery")
	}
}

func (pr Product) validate(p *problems, prefix string) {
	checkText(p, join(prefix, "title"), pr.Title, true, MaxTitleLen)
	checkURL(p, join(prefix, "url"), pr.URL, false)
	checkURL(p, join(prefix, "image_url"), pr.ImageURL, false)
	if pr.Price != "" {
		checkPattern(p, join(prefix, "price"), pr.Price, priceRE, `a decimal string such as "19.99"`)
	}
}

func (d Delivery) validate(p *problems, prefix string) {
	switch d.Mode {
	case DeliveryAll, DeliveryStockAware:
	case "":
		p.add(join(prefix, "mode"), "required")
	default:
		p.add(join(prefix, "mode"), "must be "+DeliveryAll+" or "+DeliveryStockAware+", got "+quote(d.Mode))
	}
	checkRange(p, join(prefix, "per_unit"), int64(d.PerUnit), 0, MaxPerUnit)
	checkRange(p, join(prefix, "min_stock"), d.MinStock, 0, MaxQuantity)
	checkRange(p, join(prefix, "interval_ms"), d.IntervalMS, 0, MaxIntervalMS)
}

// StockLevel is the value of inventory.stock.v1 (compacted, key
// "<sku>|<region>"): the current stock of a sku in a region. Episode is the
// number of restocks so far (0 before the first).
type StockLevel struct {
	SKU      string    `json:"sku"`
	Region   string    `json:"region"`
	Quantity int64     `json:"quantity"`
	Episode  int64     `json:"episode"`
	At       time.Time `json:"at"`
}

// Validate checks every field and returns a *ValidationError listing all
// problems, or nil.
func (s StockLevel) Validate() error {
	p := &problems{typ: SchemaStockLevel}
	p.check(checkID("sku", s.SKU))
	p.check(checkRegion("region", s.Region))
	checkRange(p, "quantity", s.Quantity, 0, MaxQuantity)
	checkMin(p, "episode", s.Episode, 0)
	if s.At.IsZero() {
		p.add("at", "required")
	}
	return p.err()
}

// StockKey is the record key of inventory.stock.v1.
func StockKey(sku, region string) string { return sku + "|" + region }

// ParseStockKey splits a key of inventory.stock.v1: a tombstone has no value,
// so its key is all that says which (sku, region) is gone. Neither an id nor a
// region may hold '|', so the split is unambiguous.
func ParseStockKey(key string) (sku, region string, ok bool) {
	sku, region, ok = strings.Cut(key, "|")
	if !ok || !ValidID(sku) || !ValidRegion(region) {
		return "", "", false
	}
	return sku, region, true
}
