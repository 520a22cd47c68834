// Package store keeps stock levels, episodes, product metadata, idempotency
// records and the transactional outbox in Redis. One Lua script applies a
// batch of updates to one shard atomically: it sets each level, detects the
// restock transition (the rule of internal/stock), bumps the episode and
// appends the level change (and the restock, if any) to the shard's outbox
// stream, so a stored level without its outbox entry cannot exist.
//
// Keys are hash-tagged per shard ("inv:{s3}:levels") so every key one script
// touches lives in one Redis Cluster slot, and the shards spread over the
// cluster. The shard of a sku is fixed by OUTBOX_SHARDS; changing it on a
// populated store would orphan levels (see the README).
package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/inventory/internal/stock"
	"backinstock/shared/config"
	"backinstock/topics/events"
)

//go:embed apply.lua
var applyLua string

//go:embed begin.lua
var beginLua string

//go:embed abandon.lua
var abandonLua string

// ChunkSize bounds the updates one script call applies, so one bulk request
// does not block Redis for long and other callers interleave between chunks.
const ChunkSize = 500

// The defaults of Options and of the service's flags (DefaultShards is the
// flag's alone: a Store never defaults its key layout).
const (
	DefaultShards         = 4
	DefaultMinQuantity    = 1
	DefaultIdempotencyTTL = 24 * time.Hour
)

// Options configure a Store; zero values other than Shards take the
// defaults.
type Options struct {
	// Shards spreads the keys over Redis Cluster slots. Required, never
	// defaulted: it fixes the key layout for the life of a store, so a
	// caller that forgot it must not silently read another layout.
	Shards int
	// MinQuantity: a sold-out sku restocks when its level reaches it.
	MinQuantity int64
	// IdempotencyTTL is how long idempotency records are kept.
	IdempotencyTTL time.Duration
}

func (o *Options) setDefaults() {
	config.Default(&o.MinQuantity, DefaultMinQuantity)
	config.Default(&o.IdempotencyTTL, DefaultIdempotencyTTL)
}

// Validate names every wrong setting; a zero value other than Shards is not
// wrong, it takes the default.
func (o Options) Validate() error {
	var p config.Problems
	config.Positive(&p, "Shards", o.Shards)
	config.NotNegative(&p, "MinQuantity", o.MinQuantity)
	// The chunk records expire with EX, in whole seconds.
	if o.IdempotencyTTL != 0 && o.IdempotencyTTL < time.Second {
		p.Addf("IdempotencyTTL", "must be at least 1s, got %s", o.IdempotencyTTL)
	}
	return p.Err()
}

// Store is the Redis side of the inventory.
type Store struct {
	rdb     redis.UniversalClient
	o       Options
	apply   *redis.Script
	begin   *redis.Script
	abandon *redis.Script
}

// New returns a Store over rdb.
func New(rdb redis.UniversalClient, o Options) (*Store, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("configure store: %w", err)
	}
	o.setDefaults()
	return &Store{rdb: rdb, o: o, apply: redis.NewScript(applyLua), begin: redis.NewScript(beginLua), abandon: redis.NewScript(abandonLua)}, nil
}

// Shards is the number of outbox shards.
func (s *Store) Shards() int { return s.o.Shards }

// Client is the Redis client (readiness, relay).
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// ShardOf is the shard a sku's keys live on; every region of a sku shares it,
// so its product metadata is on the same slot as its levels.
func (s *Store) ShardOf(sku string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(sku))
	return int(h.Sum32() % uint32(s.o.Shards))
}

// Result is the outcome of one update.
type Result struct {
	SKU      string `json:"sku"`
	Region   string `json:"region"`
	Quantity int64  `json:"quantity"`
	Previous int64  `json:"previous_quantity"`
	Episode  int64  `json:"episode"`
	Restock  bool   `json:"restock"`
	// Replayed: an earlier attempt of the same idempotent request applied
	// this update; this is its recorded result, and nothing was applied now.
	Replayed bool `json:"-"`
}

// Load loads the scripts (after a Redis restart EVALSHA would fail with
// NOSCRIPT; Apply reloads then).
func (s *Store) Load(ctx context.Context) error {
	if err := s.apply.Load(ctx, s.rdb).Err(); err != nil {
		return fmt.Errorf("load apply script: %w", err)
	}
	if err := s.begin.Load(ctx, s.rdb).Err(); err != nil {
		return fmt.Errorf("load idempotency script: %w", err)
	}
	if err := s.abandon.Load(ctx, s.rdb).Err(); err != nil {
		return fmt.Errorf("load idempotency release script: %w", err)
	}
	return nil
}

// Apply applies updates (already checked) in order and answers one Result
// each. Updates of different shards are applied by different script calls,
// sent in one pipeline. With idemKey set, each chunk records its results, so
// a retry of the same request re-applies nothing that was applied and
// answers the same results (marked Replayed): after a crash, and after a
// timeout whose scripts a stalled Redis still runs later, in whichever order
// they and the retry's reach it, since each chunk checks its record and
// applies in one atomic step.
//
// Each script call is sent once (shared/redisconn turns go-redis' retries
// off): a request without a key whose call timed out may or may not have
// been applied, and only its caller can find out (GET the level).
func (s *Store) Apply(ctx context.Context, now time.Time, updates []stock.Update, idemKey string) ([]Result, error) {
	type chunk struct {
		shard int
		idx   []int
	}
	byShard := make([][]int, s.o.Shards)
	for i, u := range updates {
		sh := s.ShardOf(u.SKU)
		byShard[sh] = append(byShard[sh], i)
	}
	var chunks []chunk
	for sh, idx := range byShard {
		for len(idx) > 0 {
			n := min(len(idx), ChunkSize)
			chunks = append(chunks, chunk{shard: sh, idx: idx[:n]})
			idx = idx[n:]
		}
	}
	nowMS := strconv.FormatInt(now.UnixMilli(), 10)
	minQ := strconv.FormatInt(s.o.MinQuantity, 10)
	ttl := strconv.FormatInt(int64(s.o.IdempotencyTTL/time.Second), 10)
	run := func() ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, len(chunks))
		_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			seen := make([]int, s.o.Shards)
			for ci, c := range chunks {
				keys := []string{levelsKey(c.shard), productsKey(c.shard), OutboxKey(c.shard)}
				if idemKey != "" {
					keys = append(keys, chunkKey(c.shard, idemKey, seen[c.shard]))
					seen[c.shard]++
				}
				args := make([]any, 0, 3+len(entryFormat)+6*len(c.idx))
				args = append(args, nowMS, minQ, ttl)
				args = append(args, entryFormat...)
				for _, i := range c.idx {
					u := updates[i]
					args = append(args, u.SKU, u.Region, u.Quantity, jsonOrEmpty(u.Product), jsonOrEmpty(u.Delivery), u.Traceparent)
				}
				cmds[ci] = s.apply.EvalSha(ctx, p, keys, args...)
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run()
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		if err = s.Load(ctx); err == nil {
			cmds, err = run()
		}
	}
	if err != nil {
		return nil, fmt.Errorf("apply %d stock updates: %w", len(updates), err)
	}
	out := make([]Result, len(updates))
	for ci, c := range chunks {
		str, err := cmds[ci].Text()
		if err != nil {
			return nil, fmt.Errorf("apply stock updates: %w", err)
		}
		str, replayed := strings.CutPrefix(str, replayMark)
		parts := strings.Split(str, ";")
		if len(parts) != len(c.idx) {
			return nil, fmt.Errorf("apply stock updates: script answered %d results for %d updates", len(parts), len(c.idx))
		}
		for j, i := range c.idx {
			var prev, ep, rs int64
			if _, err := fmt.Sscanf(parts[j], "%d,%d,%d", &prev, &ep, &rs); err != nil {
				return nil, fmt.Errorf("apply stock updates: script result %q: %w", parts[j], err)
			}
			u := updates[i]
			out[i] = Result{SKU: u.SKU, Region: u.Region, Quantity: u.Quantity, Previous: prev, Episode: ep, Restock: rs == 1, Replayed: replayed}
		}
	}
	return out, nil
}

// replayMark starts apply.lua's answer when it comes from the chunk's record.
const replayMark = "="

func jsonOrEmpty[T any](v *T) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(b)
}

// Level is what GET answers.
type Level struct {
	SKU      string          `json:"sku"`
	Region   string          `json:"region"`
	Quantity int64           `json:"quantity"`
	Episode  int64           `json:"episode"`
	Product  *events.Product `json:"product,omitempty"`
}

// ErrNotFound is returned by Get for a (sku, region) never written.
var ErrNotFound = errors.New("stock level not found")

// Get reads the level of sku in region.
func (s *Store) Get(ctx context.Context, sku, region string) (Level, error) {
	sh := s.ShardOf(sku)
	var lv, pr *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		lv = p.HGet(ctx, levelsKey(sh), sku+"|"+region)
		pr = p.HGet(ctx, productsKey(sh), sku)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Level{}, fmt.Errorf("get stock %s/%s: %w", sku, region, err)
	}
	raw, err := lv.Result()
	if errors.Is(err, redis.Nil) {
		return Level{}, ErrNotFound
	}
	st, err := ParseState(raw)
	if err != nil {
		return Level{}, fmt.Errorf("get stock %s/%s: %w", sku, region, err)
	}
	out := Level{SKU: sku, Region: region, Quantity: st.Quantity, Episode: st.Episode}
	if p, err := pr.Result(); err == nil && p != "" {
		var prod events.Product
		if json.Unmarshal([]byte(p), &prod) == nil {
			out.Product = &prod
		}
	}
	return out, nil
}

// ParseState reads the stored "quantity:episode:armed" form.
func ParseState(raw string) (stock.State, error) {
	var st stock.State
	var armed int
	if _, err := fmt.Sscanf(raw, "%d:%d:%d", &st.Quantity, &st.Episode, &armed); err != nil {
		return st, fmt.Errorf("stored level %q: %w", raw, err)
	}
	st.Armed = armed == 1
	return st, nil
}
