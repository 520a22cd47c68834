package wishes

import (
	"time"

	"backinstock/topics/events"
)

// Policy is how one restock is fanned out.
type Policy struct {
	// Mode is events.DeliveryAll or events.DeliveryStockAware.
	Mode string
	// PerUnit wishlisters are notified per unit in stock, per wave.
	PerUnit int
	// MinStock is the stock a further wave needs (at least 1: an empty
	// shelf never wakes anyone).
	MinStock int64
	// Interval separates waves.
	Interval time.Duration
}

// Resolve applies a restock's delivery override to the configured default:
// the mode always, numeric fields only where set (zero keeps the default).
func Resolve(def Policy, d *events.Delivery) Policy {
	p := def
	if d == nil {
		return p
	}
	if d.Mode != "" {
		p.Mode = d.Mode
	}
	if d.PerUnit > 0 {
		p.PerUnit = d.PerUnit
	}
	if d.MinStock > 0 {
		p.MinStock = d.MinStock
	}
	if d.IntervalMS > 0 {
		p.Interval = time.Duration(d.IntervalMS) * time.Millisecond
	}
	return p
}

// WaveSize is how many wishlisters one wave of a stock-aware fan-out
// notifies: per_unit × quantity, at least one while anything is in stock.
func WaveSize(perUnit int, quantity int64) int64 {
	if quantity <= 0 {
		return 0
	}
	return max(int64(perUnit), 1) * quantity
}

// Level is what the stock view knows of a (sku, region).
type Level struct {
	Quantity int64
	Episode  int64
	Known    bool
}

// NextWave decides whether a stock-aware fan-out of restock episode goes on
// after a wave, and how large the next wave is. It stops when the stock is
// unknown, when it is under the minimum (sold out again included), or when a
// later episode has begun: that restock has its own fan-out.
func NextWave(p Policy, episode int64, l Level) (size int64, ok bool) {
	if !l.Known || l.Episode > episode || l.Quantity < max(p.MinStock, 1) {
		return 0, false
	}
	return WaveSize(p.PerUnit, l.Quantity), true
}

// Checkpoint is the progress of one (restock, region) fan-out, written only
// after every notification before Cursor is acknowledged by Kafka.
type Checkpoint struct {
	// Score and Member are the last wishlister done (the sorted-set cursor);
	// Member "" means none yet.
	Score  int64  `json:"score"`
	Member string `json:"member,omitempty"`
	// Users and Records count the wishlisters passed and the notifications
	// produced so far.
	Users   int64 `json:"users"`
	Records int64 `json:"records"`
	// Wave is the stock-aware wave in progress (0: none yet), WaveLeft the
	// wishlisters it may still notify.
	Wave     int   `json:"wave,omitempty"`
	WaveLeft int64 `json:"wave_left,omitempty"`
	// Notified counts the wishlisters reached on at least one channel
	// (what a stock-aware wave is sized in).
	Notified int64 `json:"notified,omitempty"`
	// Round, when set, is a part of the wishlisters being fanned out by
	// several segments at once, each with its own checkpoint (Segment);
	// the cursor above stays at the round's start until all are done.
	Round *Round `json:"round,omitempty"`
	// Done marks a finished fan-out: a redelivered restock is skipped.
	Done bool `json:"done,omitempty"`
}

// Bound is a place in a sku's sorted set of wishlisters: a wishlist time
// and, among equal times, a user id.
type Bound struct {
	Score  int64  `json:"score"`
	Member string `json:"member"`
}

// Round is a range of wishlisters after a checkpoint's cursor, split into
// Segments contiguous parts that are paged concurrently.
type Round struct {
	// ID tells this round from the restock's other rounds (its plan time, ns):
	// a segment's lease names it.
	ID       int64 `json:"id"`
	Segments int   `json:"segments"`
	// End is the round's last wishlister (inclusive); nil: to the end of
	// the set, wishlisters added meanwhile included.
	End *Bound `json:"end,omitempty"`
}

// Segment is the progress of one part of a round: its cursor and counts
// (the embedded Checkpoint, of which Round, Wave and WaveLeft are unused)
// and its inclusive end, nil for the round's open last part.
type Segment struct {
	Checkpoint
	To *Bound `json:"to,omitempty"`
}
