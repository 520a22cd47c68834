// Package service is the wishlist's write path, shared by the HTTP API, the
// bulk import and the rebuild: every change is first produced to
// wishlist.changes.v1 and acknowledged (acks=all), then written to Redis, so
// the log is never behind the store and a rebuild loses nothing that was
// answered with a 2xx.
package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/IBM/sarama"

	"backinstock/services/wishlist/internal/changelog"
	"backinstock/services/wishlist/internal/store"
	"backinstock/services/wishlist/internal/wishes"
)

// Producer is what the service needs of shared/kafka.Producer.
type Producer interface {
	SendAll(ctx context.Context, msgs []*sarama.ProducerMessage) error
}

// Service writes wishlist changes.
type Service struct {
	Store    *store.Store
	Producer Producer
	Topic    string
	Regions  []string
	Now      func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Put adds or updates entries (already checked). An entry that exists keeps
// its wishlist time, so changing channels or region does not lose the
// user's place; a new entry gets e.Since (or now when zero). It returns the
// entries as stored.
func (s *Service) Put(ctx context.Context, entries []wishes.Entry) ([]wishes.Entry, error) {
	entries = lastPerKey(entries)
	old, err := s.Store.Lookup(ctx, entries)
	if err != nil {
		return nil, err
	}
	now := time.UnixMilli(s.now().UnixMilli())
	msgs := make([]*sarama.ProducerMessage, len(entries))
	for i := range entries {
		e := &entries[i]
		e.Channels = wishes.CanonicalChannels(e.Channels)
		switch {
		case old[i] != nil:
			e.Since = old[i].Since
		case e.Since.IsZero():
			e.Since = now
		}
		if msgs[i], err = changelog.PutMessage(s.Topic, *e); err != nil {
			return nil, err
		}
	}
	if err := s.Producer.SendAll(ctx, msgs); err != nil {
		return nil, fmt.Errorf("log %d wishlist changes: %w", len(msgs), err)
	}
	if err := s.Store.Write(ctx, entries, nil, old); err != nil {
		return nil, err
	}
	return entries, nil
}

// lastPerKey keeps the last entry of each (user, sku), in first-seen order,
// so a batch that names a pair twice is written once, as its last line says.
func lastPerKey(entries []wishes.Entry) []wishes.Entry {
	idx := make(map[[2]string]int, len(entries))
	out := entries[:0:0]
	for _, e := range entries {
		k := [2]string{e.UserID, e.SKU}
		if i, ok := idx[k]; ok {
			out[i] = e
			continue
		}
		idx[k] = len(out)
		out = append(out, e)
	}
	return out
}

// Remove deletes an entry; it reports false when there was none.
func (s *Service) Remove(ctx context.Context, userID, sku string) (bool, error) {
	key := []wishes.Entry{{UserID: userID, SKU: sku}}
	old, err := s.Store.Lookup(ctx, key)
	if err != nil {
		return false, err
	}
	if old[0] == nil {
		return false, nil
	}
	if err := s.Producer.SendAll(ctx, []*sarama.ProducerMessage{changelog.RemoveMessage(s.Topic, userID, sku)}); err != nil {
		return false, fmt.Errorf("log removal of %s|%s: %w", userID, sku, err)
	}
	return true, s.Store.Write(ctx, nil, key, old)
}

// SetPrefs replaces a user's preferences (already checked; nil clears
// them) but keeps the user's devices, which only the device routes change:
// a settings screen that saves preferences does not unregister the phone.
// It returns the preferences as stored.
func (s *Service) SetPrefs(ctx context.Context, userID string, p *wishes.Preferences) (*wishes.Preferences, error) {
	return s.UpdatePrefs(ctx, userID, func(cur *wishes.Preferences) (*wishes.Preferences, bool, error) {
		next := p
		if cur != nil && len(cur.Devices) > 0 {
			next = &wishes.Preferences{}
			if p != nil {
				*next = *p
			}
			next.Devices = cur.Devices
		}
		return next, true, nil
	})
}

// UpdatePrefs changes a user's preferences as change says (see
// store.UpdatePrefs: it gets the stored ones, nil when none, and returns
// what to store and whether to write), logging the result to the changelog
// before it is written. A change that returns a rule error writes nothing.
// It returns the preferences as stored.
func (s *Service) UpdatePrefs(ctx context.Context, userID string, change func(cur *wishes.Preferences) (*wishes.Preferences, bool, error)) (*wishes.Preferences, error) {
	return s.Store.UpdatePrefs(ctx, userID, func(ctx context.Context, cur *wishes.Preferences) (*wishes.Preferences, bool, error) {
		next, write, err := change(cur)
		if err != nil || !write {
			return next, write, err
		}
		if next != nil {
			next.Normalize()
		}
		msg, err := changelog.PrefsMessage(s.Topic, userID, next, s.now())
		if err != nil {
			return nil, false, err
		}
		if err := s.Producer.SendAll(ctx, []*sarama.ProducerMessage{msg}); err != nil {
			return nil, false, fmt.Errorf("log preferences of %s: %w", userID, err)
		}
		return next, true, nil
	})
}

// Apply writes changelog records to the store without logging them again
// (the rebuild). Within a batch only the last record per key counts.
func (s *Service) Apply(ctx context.Context, recs []changelog.Record) error {
	last := make(map[string]int, len(recs))
	for i, r := range recs {
		last[r.Key()] = i
	}
	var puts, removes []wishes.Entry
	for i, r := range recs {
		if last[r.Key()] != i {
			continue
		}
		switch r.Kind {
		case changelog.KindPut:
			puts = append(puts, r.Entry)
		case changelog.KindRemove:
			removes = append(removes, r.Entry)
		case changelog.KindPrefs:
			if err := s.Store.SetPrefs(ctx, r.UserID, r.Prefs); err != nil {
				return err
			}
		}
	}
	old, err := s.Store.Lookup(ctx, append(append([]wishes.Entry(nil), puts...), removes...))
	if err != nil {
		return err
	}
	return s.Store.Write(ctx, puts, removes, old)
}

// Erased counts what Erase removed of the wishlist's own data.
type Erased struct {
	// Entries are the wishlist entries removed; Tombstones the changelog
	// records written; Checkpoints the fan-out checkpoints whose cursor
	// named the user.
	Entries, Tombstones, Checkpoints int
	// Prefs is whether preferences (contacts, devices) were stored.
	Prefs bool
}

// Erase removes everything the wishlist keeps about a user: a tombstone in
// the changelog for each of the user's keys (every entry and the
// preferences), acknowledged before the store is touched, so a crash in
// between leaves the store to be erased by the repeat instead of a log
// that would bring the user back on a rebuild; then the user hash and the
// entries in every region's sorted set and items hash; then the user as a
// fan-out checkpoint's cursor. A user the store does not hold gets no
// record, so a repeat appends nothing.
func (s *Service) Erase(ctx context.Context, userID string) (Erased, error) {
	var res Erased
	raw, err := s.Store.ReadRaw(ctx, userID)
	if err != nil {
		return res, err
	}
	if raw.Exists {
		msgs := make([]*sarama.ProducerMessage, 0, len(raw.SKUs)+1)
		for _, sku := range raw.SKUs {
			msgs = append(msgs, changelog.RemoveMessage(s.Topic, userID, sku))
		}
		// Always, not only when the hash has preferences now: a record
		// that cleared them still names the user.
		msgs = append(msgs, changelog.PrefsTombstone(s.Topic, userID))
		if err := s.Producer.SendAll(ctx, msgs); err != nil {
			return res, fmt.Errorf("log erasure of %s: %w", userID, err)
		}
		res.Tombstones = len(msgs)
		if err := s.Store.EraseUser(ctx, userID, raw.SKUs, s.Regions); err != nil {
			return res, err
		}
		res.Entries, res.Prefs = len(raw.SKUs), raw.Prefs
	}
	res.Checkpoints, err = s.Store.ScrubCheckpoints(ctx, userID)
	return res, err
}

// ImportResult counts what an import did. Errors holds the first few bad
// lines (line number and reason).
type ImportResult struct {
	Imported int64             `json:"imported"`
	Rejected int64             `json:"rejected"`
	Errors   []ImportLineError `json:"errors,omitempty"`
}

// ImportLineError is one rejected line.
type ImportLineError struct {
	Line   int64  `json:"line"`
	Reason string `json:"reason"`
}

// maxReportedErrors bounds the errors an import reports (memory and body).
const maxReportedErrors = 100

// MaxImportLine is the longest NDJSON line an import accepts.
const MaxImportLine = 64 << 10

// ErrLineTooLong stops an import whose line exceeds MaxImportLine.
var ErrLineTooLong = errors.New("import line too long")

// Import reads NDJSON entries from r and puts them in batches of batch
// lines, so memory stays bounded by one batch whatever the input's size.
// Bad lines are counted and skipped; a store or log failure stops the
// import (the lines before it are in, and re-importing is harmless).
func (s *Service) Import(ctx context.Context, r io.Reader, batch int) (ImportResult, error) {
	var res ImportResult
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxImportLine)
	entries := make([]wishes.Entry, 0, batch)
	flush := func() error {
		if len(entries) == 0 {
			return nil
		}
		if _, err := s.Put(ctx, entries); err != nil {
			return err
		}
		res.Imported += int64(len(entries))
		entries = entries[:0]
		return nil
	}
	var line int64
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if len(trimSpace(b)) == 0 {
			continue
		}
		e, err := wishes.ParseImportLine(b, s.Regions, s.now())
		if err != nil {
			res.Rejected++
			if len(res.Errors) < maxReportedErrors {
				res.Errors = append(res.Errors, ImportLineError{Line: line, Reason: err.Error()})
			}
			continue
		}
		entries = append(entries, e)
		if len(entries) == batch {
			if err := flush(); err != nil {
				return res, err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%w: line %d exceeds %d bytes", ErrLineTooLong, line+1, MaxImportLine)
		}
		return res, errors.Join(flush(), err)
	}
	return res, flush()
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
