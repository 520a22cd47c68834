// Package attribution decides which order lines notifications earned and
// keeps the attributed orders in the shared layout (internal/aggkeys).
//
// An order line of a SKU is **direct** when its buyer clicked a
// notification of that SKU within the click window before the order,
// **assisted** when a notification of it was delivered to the buyer within
// the view window before the order and there was no such click, and not
// attributed otherwise. Every time is an event's own (the click's at, the
// delivery's at, the order's ordered_at), so a replay decides the same.
//
// The decision does not depend on the order the three topics are read in:
// instead of holding orders until the touch topics have caught up, every
// order line is decided again whenever a touch of its buyer and SKU
// arrives that could change it, and the aggregates move with it (out of
// the old bucket, into the new one) in the same Lua script. Whatever the
// interleaving, once every record is read each line's attribution is that
// of all its touches, as if they had all come first. A rebuild from an
// empty Redis therefore ends where the live consumer did.
//
// Redis keys, all under the SKU's hash tag so that one script can read the
// touches, the line and write the aggregates on one cluster slot:
//
//	engagement:attrtouch:{<sku>}:click:<user>       ZSET  "<region>|<channel>|<event_id>" scored by the click's at (ms)
//	engagement:attrtouch:{<sku>}:delivered:<user>   ZSET  the same for deliveries (status delivered)
//	engagement:attrpending:{<sku>}:<user>           ZSET  the buyer's line keys of the SKU, scored by ordered_at (ms)
//	engagement:attrline:{<sku>}:<order_id>:<line>   HASH  t, qty, rev, cur, tmpl and the line's current kind, region, channel
//
// The line hash is also the marker that the line was counted: it is
// created in the script that adds its increments, so a replay, a restart or
// a redelivery of the order finds it and counts nothing again.
//
// The touch script reaches line keys (from the pending set) and the
// aggregate hashes it does not list in KEYS: they carry the same hash tag,
// so on a Redis Cluster they live on the slot of the listed keys.
package attribution

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/engagement/internal/aggkeys"
)

// Kinds of attribution.
const (
	KindDirect   = "direct"
	KindAssisted = "assisted"
)

// Windows are the rules' durations.
type Windows struct {
	// Click and View are the click and view windows (Click <= View).
	Click, View time.Duration
	// Horizon is how late an order may arrive or be replayed (event time)
	// and still meet its touches: touches older than a buyer's newest one
	// of the SKU by more than View + Horizon are trimmed, and touches,
	// pending lines and line markers live View + Horizon past their last
	// write. It must be at least orders.v1's retention, so no order that
	// can still be replayed finds its line marker gone.
	Horizon time.Duration
}

func (w Windows) keep() time.Duration { return w.View + w.Horizon }

// Touch is a click or a delivery of a notification of SKU to UserID.
type Touch struct {
	UserID, SKU, Region, Channel string
	// EventID tells the touch apart from the user's other touches of the
	// SKU; the same record read again is the same member.
	EventID string
	At      time.Time
}

// Line is one order line to decide.
type Line struct {
	OrderID string
	// Index is the line's position in the order.
	Index       int
	UserID, SKU string
	OrderedAt   time.Time
	Quantity    int64
	Revenue     int64 // minor units of Currency
	Currency    string
}

// Change is a line whose attribution the call set or moved.
type Change struct {
	SKU, Kind, Region, Channel, Currency string
	Revenue                              int64
}

// Outcome is what one script call did.
type Outcome struct {
	// NewLine is true when the call counted an order line for the first
	// time.
	NewLine bool
	// Changes are the lines attributed anew or otherwise than before.
	Changes []Change
	// Buckets are the IndexMembers of the aggregates the evaluated lines
	// now count in, changed or not: the caller adds them to the index
	// (another slot) after the script, again on a retry.
	Buckets []string
}

func touchKey(kind, sku, user string) string {
	return "engagement:attrtouch:{" + sku + "}:" + kind + ":" + user
}
func pendingKey(sku, user string) string { return "engagement:attrpending:{" + sku + "}:" + user }
func lineKey(sku, orderID string, index int) string {
	return "engagement:attrline:{" + sku + "}:" + orderID + ":" + strconv.Itoa(index)
}

// Marks stand for the region and channel in a line's aggregate key
// template; neither can be part of a region or channel.
const (
	markRegion  = "<R>"
	markChannel = "<C>"
)

// common is the part both scripts share: the header of ARGV, the decision
// and the move of a line between aggregates.
const common = `
local CW, VW, KEEP, H = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local FIELDS = {direct = {ARGV[5], ARGV[6], ARGV[7]}, assisted = {ARGV[8], ARGV[9], ARGV[10]}}
local CLICKS, DELIVERED, PENDING = KEYS[1], KEYS[2], KEYS[3]

local function int(x) return string.format('%.0f', x) end

-- decide: the latest click within the click window, else the latest
-- delivery within the view window; ties go to the greatest member.
local function decide(t)
  local c = redis.call('ZREVRANGEBYSCORE', CLICKS, int(t), int(t - CW), 'LIMIT', 0, 1)
  if #c > 0 then return 'direct', c[1] end
  local d = redis.call('ZREVRANGEBYSCORE', DELIVERED, int(t), int(t - VW), 'LIMIT', 0, 1)
  if #d > 0 then return 'assisted', d[1] end
  return '', ''
end

local function bump(tmpl, region, channel, kind, qty, rev, cur, neg)
  local key = string.gsub(string.gsub(tmpl, '<R>', region, 1), '<C>', channel, 1)
  local f = FIELDS[kind]
  local sign = neg and '-' or ''
  local incs = {f[1], sign .. '1', f[2], sign .. qty, f[3] .. cur, sign .. rev}
  for i = 1, #incs, 2 do
    -- A field back at zero goes, so a line moved away leaves the hash as
    -- if it had never counted there (an empty hash is deleted by Redis).
    if redis.call('HINCRBY', key, incs[i], incs[i + 1]) == 0 then redis.call('HDEL', key, incs[i]) end
  end
end

-- evaluate decides the line again and moves it when the decision changed.
-- It returns the change (or false) and the line's bucket (or false).
local function evaluate(line)
  local l = redis.call('HMGET', line, 't', 'qty', 'rev', 'cur', 'tmpl', 'kind', 'region', 'channel')
  if not l[1] then return false, false end
  local kind, m = decide(tonumber(l[1]))
  local region, channel = '', ''
  if kind ~= '' then region, channel = string.match(m, '^([^|]*)|([^|]*)|') end
  local bucket = false
  if kind ~= '' then bucket = region .. '|' .. channel end
  local ok, orr, och = l[6] or '', l[7] or '', l[8] or ''
  if kind == ok and region == orr and channel == och then return false, bucket end
  if ok ~= '' then bump(l[5], orr, och, ok, l[2], l[3], l[4], true) end
  if kind ~= '' then bump(l[5], region, channel, kind, l[2], l[3], l[4], false) end
  redis.call('HSET', line, 'kind', kind, 'region', region, 'channel', channel)
  redis.call('PEXPIRE', line, KEEP)
  if kind == '' then return false, false end
  return {kind, region, channel, l[3], l[4]}, bucket
end

-- trim drops the members of key older than its newest by more than the
-- view window and the horizon, and keeps key for that long.
local function trim(key)
  local newest = redis.call('ZREVRANGE', key, 0, 0, 'WITHSCORES')
  if #newest == 2 then
    redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. int(tonumber(newest[2]) - VW - H))
  end
  redis.call('PEXPIRE', key, KEEP)
end
`

// lineScript: KEYS clicks, delivered, pending, line; ARGV the header, then
// [11] ordered_at ms, [12] quantity, [13] revenue, [14] currency, [15] the
// aggregate key template. Answers {new line 0|1, changes, buckets}.
var lineScript = redis.NewScript(common + `
local line = KEYS[4]
local created = 0
if redis.call('EXISTS', line) == 0 then
  redis.call('HSET', line, 't', ARGV[11], 'qty', ARGV[12], 'rev', ARGV[13], 'cur', ARGV[14], 'tmpl', ARGV[15], 'kind', '', 'region', '', 'channel', '')
  created = 1
end
redis.call('PEXPIRE', line, KEEP)
redis.call('ZADD', PENDING, ARGV[11], line)
trim(PENDING)
local change, bucket = evaluate(line)
local changes, buckets = {}, {}
if change then changes[1] = change end
if bucket then buckets[1] = bucket end
return {created, changes, buckets}
`)

// touchScript: KEYS clicks, delivered, pending; ARGV the header, then [11]
// "click" or "delivered", [12] the touch's at ms, [13] its member. It adds
// the touch and decides again every pending line of the buyer and SKU it
// could earn (ordered within the view window after it). Answers {0,
// changes, buckets}.
var touchScript = redis.NewScript(common + `
local key = CLICKS
if ARGV[11] == 'delivered' then key = DELIVERED end
local t = tonumber(ARGV[12])
redis.call('ZADD', key, ARGV[12], ARGV[13])
trim(key)
local changes, buckets = {}, {}
for _, line in ipairs(redis.call('ZRANGEBYSCORE', PENDING, ARGV[12], int(t + VW))) do
  local change, bucket = evaluate(line)
  if change then changes[#changes + 1] = change end
  if bucket then buckets[#buckets + 1] = bucket end
end
return {0, changes, buckets}
`)

// Store runs the scripts.
type Store struct {
	rdb    redis.UniversalClient
	w      Windows
	header []any
}

// NewStore decides with w in rdb (shared/redisconn: each command sent
// once, so a script never runs twice for one call).
func NewStore(rdb redis.UniversalClient, w Windows) *Store {
	return &Store{rdb: rdb, w: w, header: []any{
		w.Click.Milliseconds(), w.View.Milliseconds(), w.keep().Milliseconds(), w.Horizon.Milliseconds(),
		aggkeys.DirectOrders, aggkeys.DirectUnits, aggkeys.DirectRevenue(""),
		aggkeys.AssistedOrders, aggkeys.AssistedUnits, aggkeys.AssistedRevenue(""),
	}}
}

// call is one script call, queued in a pipeline.
type call struct {
	sku    string
	script *redis.Script
	keys   []string
	args   []any
}

// Batch gathers script calls for one round trip.
type Batch struct{ calls []call }

// AddTouch queues a click (kind "click") or delivery (kind "delivered").
func (s *Store) AddTouch(b *Batch, kind string, t Touch) {
	member := t.Region + "|" + t.Channel + "|" + t.EventID
	args := append(append([]any(nil), s.header...), kind, t.At.UnixMilli(), member)
	b.calls = append(b.calls, call{sku: t.SKU, script: touchScript, keys: s.keys(t.SKU, t.UserID), args: args})
}

// AddLine queues an order line.
func (s *Store) AddLine(b *Batch, l Line) {
	tmpl := aggkeys.Attribution(l.SKU, markRegion, markChannel, aggkeys.Day(l.OrderedAt))
	args := append(append([]any(nil), s.header...), l.OrderedAt.UnixMilli(), l.Quantity, l.Revenue, l.Currency, tmpl)
	keys := append(s.keys(l.SKU, l.UserID), lineKey(l.SKU, l.OrderID, l.Index))
	b.calls = append(b.calls, call{sku: l.SKU, script: lineScript, keys: keys, args: args})
}

func (s *Store) keys(sku, user string) []string {
	return []string{touchKey("click", sku, user), touchKey("delivered", sku, user), pendingKey(sku, user)}
}

// Len is the number of queued calls.
func (b *Batch) Len() int { return len(b.calls) }

// Run runs the batch's scripts in one pipeline, then adds the buckets the
// lines count in to the aggregates' index. Every script is idempotent, so
// a failed Run is run again whole.
func (s *Store) Run(ctx context.Context, b *Batch) ([]Outcome, error) {
	if len(b.calls) == 0 {
		return nil, nil
	}
	cmds, err := s.pipeline(ctx, b)
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		// A restarted or failed-over Redis lost the scripts: load, once more.
		for _, sc := range []*redis.Script{lineScript, touchScript} {
			if lerr := sc.Load(ctx, s.rdb).Err(); lerr != nil {
				return nil, fmt.Errorf("load attribution scripts: %w", lerr)
			}
		}
		cmds, err = s.pipeline(ctx, b)
	}
	if err != nil {
		return nil, fmt.Errorf("attribution scripts: %w", err)
	}
	out := make([]Outcome, len(cmds))
	index := map[string]bool{}
	for i, cmd := range cmds {
		o, err := parseOutcome(b.calls[i].sku, cmd.Val())
		if err != nil {
			return nil, err
		}
		out[i] = o
		for _, m := range o.Buckets {
			index[m] = true
		}
	}
	if len(index) > 0 {
		members := make([]any, 0, len(index))
		for m := range index {
			members = append(members, m)
		}
		if err := s.rdb.SAdd(ctx, aggkeys.AttributionIndex, members...).Err(); err != nil {
			return nil, fmt.Errorf("attribution index: %w", err)
		}
	}
	return out, nil
}

func (s *Store) pipeline(ctx context.Context, b *Batch) ([]*redis.Cmd, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(b.calls))
	for i, c := range b.calls {
		cmds[i] = c.script.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, err := pipe.Exec(ctx)
	return cmds, err
}

func parseOutcome(sku string, v any) (Outcome, error) {
	res, ok := v.([]any)
	if !ok || len(res) != 3 {
		return Outcome{}, fmt.Errorf("attribution script answered %v", v)
	}
	var o Outcome
	created, _ := res[0].(int64)
	o.NewLine = created == 1
	changes, _ := res[1].([]any)
	for _, c := range changes {
		f, ok := c.([]any)
		if !ok || len(f) != 5 {
			return Outcome{}, fmt.Errorf("attribution script answered change %v", c)
		}
		ch := Change{SKU: sku}
		ch.Kind, _ = f[0].(string)
		ch.Region, _ = f[1].(string)
		ch.Channel, _ = f[2].(string)
		rev, _ := f[3].(string)
		ch.Currency, _ = f[4].(string)
		var err error
		if ch.Revenue, err = strconv.ParseInt(rev, 10, 64); err != nil {
			return Outcome{}, fmt.Errorf("attribution script answered revenue %q", rev)
		}
		o.Changes = append(o.Changes, ch)
	}
	buckets, _ := res[2].([]any)
	for _, b := range buckets {
		rc, _ := b.(string)
		region, channel, ok := strings.Cut(rc, "|")
		if !ok {
			return Outcome{}, fmt.Errorf("attribution script answered bucket %q", rc)
		}
		o.Buckets = append(o.Buckets, aggkeys.IndexMember(sku, region, channel))
	}
	return o, nil
}
