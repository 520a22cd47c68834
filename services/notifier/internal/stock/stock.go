// Package stock keeps the notifier's local view of inventory.stock.v1 and
// decides whether a notification went stale: its sku sold out again after
// the restock it announces, so sending it would only disappoint.
package stock

import (
	"sync"

	"backinstock/topics/events"
)

type level struct {
	quantity int64
	episode  int64
}

// View is the latest stock level per (sku, region) of one region.
type View struct {
	region string
	mu     sync.RWMutex
	levels map[string]level
}

// NewView starts an empty view of region.
func NewView(region string) *View {
	return &View{region: region, levels: map[string]level{}}
}

// Apply records a level; levels of other regions are ignored (the topic holds
// every region). An older episode never overwrites a newer one.
func (v *View) Apply(l events.StockLevel) {
	if l.Region != v.region {
		return
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if cur, ok := v.levels[l.SKU]; ok && cur.episode > l.Episode {
		return
	}
	v.levels[l.SKU] = level{quantity: l.Quantity, episode: l.Episode}
}

// Stale reports whether the notification's sku is sold out now at its
// episode or a later one. A later episode that is in stock is not stale: the
// shopper is told (once, by this episode's id) and the next restock has its
// own notifications.
func (v *View) Stale(n events.Notification) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	cur, ok := v.levels[n.SKU]
	return ok && cur.quantity == 0 && cur.episode >= n.Episode
}

// Len is the number of skus known.
func (v *View) Len() int {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return len(v.levels)
}
