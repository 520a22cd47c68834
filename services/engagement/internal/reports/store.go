// Package reports keeps the merchant's report aggregates in Redis (the
// layout is internal/aggkeys) and reads them back as the reports:
// performance per SKU × region × channel, the demand ranking of sold-out
// SKUs, and the restock → delivery lag series.
//
// The writes come from one consumer group over the topics (consumer.go);
// each record is one Lua script on keys under its SKU's hash tag, so the
// marker that makes the record count once and the counters it moves are one
// atomic step:
//
//   - delivery.status.v1: a per-notification state hash (n, d, f, s: the
//     first status of each kind) decides what a status adds;
//   - engagement.clicks.v1: a marker per click event id (every click has
//     its own), and the state hash's c for the unique click;
//   - inventory.restock.v1: the restock's episode in the SKU's sorted set
//     of restock times (ZADD NX);
//   - wishlist.changes.v1 and inventory.stock.v1 (compacted: the current
//     state per key): the consumer keeps its own copy of each key's last
//     value and applies a record as the difference to it, so reading one
//     twice, or the whole log again, ends in the same state.
package reports

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/engagement/internal/aggkeys"
	"backinstock/shared/redisconn"
	"backinstock/topics/events"
)

// Store writes and reads the report aggregates.
type Store struct {
	rdb redis.UniversalClient
	// markerTTL is how long a notification's state and a click's marker
	// are kept: longer than the consumed topics keep their records, so a
	// replay never meets a record whose marker has gone.
	markerTTL time.Duration
	// retention is how long the daily aggregates are kept after their last
	// write.
	retention time.Duration
}

// NewStore uses rdb (shared/redisconn: a command is sent once, and the
// scripts are idempotent besides).
func NewStore(rdb redis.UniversalClient, markerTTL, retention time.Duration) *Store {
	return &Store{rdb: rdb, markerTTL: markerTTL, retention: retention}
}

// Ping checks the connection (readiness).
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Notification state fields (aggkeys.NotificationState): the first
// status of each kind, the first click.
const (
	stateNotified   = "n"
	stateDelivered  = "d"
	stateFailed     = "f"
	stateSuppressed = "s"
	stateClicked    = "c"
)

// deliveryScript counts one delivery status. KEYS: the notification's
// state, the day's report hash, the restock times of its SKU and region,
// the deliveries waiting for their restock (aggkeys.LagPending). ARGV: the
// state field of the status' kind (or n alone), its time (ms), the hour
// "hh", the state's TTL, the report's TTL (ms), and the report field
// names: notified, the kind's counter, lag count, sum, max, unmatched;
// last the notification id.
var deliveryScript = redis.NewScript(`
local state, rep = KEYS[1], KEYS[2]
local at = tonumber(ARGV[2])
local changed = 0
if redis.call('HSETNX', state, 'n', ARGV[2]) == 1 then
  redis.call('HINCRBY', rep, ARGV[6], 1)
  changed = 1
end
local kind = ARGV[1]
if kind ~= 'n' and redis.call('HSETNX', state, kind, ARGV[2]) == 1 then
  changed = 1
  redis.call('HINCRBY', rep, ARGV[7], 1)
  if kind == 'd' then
    local r = redis.call('ZREVRANGEBYSCORE', KEYS[3], at, '-inf', 'WITHSCORES', 'LIMIT', 0, 1)
    if #r == 2 then
      local lag = at - tonumber(r[2])
      redis.call('HINCRBY', rep, ARGV[8], 1)
      redis.call('HINCRBY', rep, ARGV[9], lag)
      local mx = tonumber(redis.call('HGET', rep, ARGV[10]) or '-1')
      if lag > mx then redis.call('HSET', rep, ARGV[10], lag) end
    else
      redis.call('HINCRBY', rep, ARGV[11], 1)
      redis.call('ZADD', KEYS[4], at, ARGV[3] .. '|' .. ARGV[12] .. '|' .. rep)
      redis.call('PEXPIRE', KEYS[4], ARGV[4])
    end
  end
end
redis.call('PEXPIRE', state, ARGV[4])
if changed == 1 then redis.call('PEXPIRE', rep, ARGV[5]) end
return changed
`)

// clickScript counts one click. KEYS: the click's marker, the
// notification's state, the day's report hash. ARGV: the click time (ms),
// the marker TTL, the report TTL, the clicks and unique clicks fields.
var clickScript = redis.NewScript(`
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[3], ARGV[4], 1)
if redis.call('HSETNX', KEYS[2], 'c', ARGV[1]) == 1 then redis.call('HINCRBY', KEYS[3], ARGV[5], 1) end
redis.call('PEXPIRE', KEYS[2], ARGV[2])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
return 1
`)

// restockScript counts one restock and settles the deliveries that came
// before it (a backlog read side by side): their lag is measured from it.
// KEYS: the restock times of the SKU and region, the day's restocks hash,
// the deliveries waiting for their restock. ARGV: the episode, when it
// occurred (ms), the TTL, the restocks field, the field prefixes of the
// lag count, sum and max, the unmatched field. The waiting deliveries'
// report hashes are named in the pending set's members, not in KEYS: they
// carry the same hash tag, so a cluster has them on this node.
var restockScript = redis.NewScript(`
local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
if added == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[4], 1)
  local at = tonumber(ARGV[2])
  local pend = redis.call('ZRANGEBYSCORE', KEYS[3], at, '+inf', 'WITHSCORES')
  for i = 1, #pend, 2 do
    local m = pend[i]
    local hh = string.sub(m, 1, 2)
    local rest = string.sub(m, 4)
    local rep = string.sub(rest, string.find(rest, '|', 1, true) + 1)
    local lag = tonumber(pend[i + 1]) - at
    redis.call('HINCRBY', rep, ARGV[5] .. hh, 1)
    redis.call('HINCRBY', rep, ARGV[6] .. hh, lag)
    local mx = tonumber(redis.call('HGET', rep, ARGV[7] .. hh) or '-1')
    if lag > mx then redis.call('HSET', rep, ARGV[7] .. hh, lag) end
    redis.call('HINCRBY', rep, ARGV[8], -1)
    redis.call('ZREM', KEYS[3], m)
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return added
`)

// wishScript applies one wishlist entry's new value (aggkeys.WishValue,
// "" once removed) as the difference to its last one. KEYS: the SKU's
// wishes, its waiting counts. ARGV: the user, the new value.
var wishScript = redis.NewScript(`
local old = redis.call('HGET', KEYS[1], ARGV[1]) or ''
local new = ARGV[2]
if old == new then return 0 end
local function apply(v, d)
  if v == '' then return end
  local sep = string.find(v, '|', 1, true)
  local region = string.sub(v, 1, sep - 1)
  redis.call('HINCRBY', KEYS[2], region, d)
  for ch in string.gmatch(string.sub(v, sep + 1), '[^,]+') do
    redis.call('HINCRBY', KEYS[2], region .. '|' .. ch, d)
  end
end
apply(old, -1)
apply(new, 1)
if new == '' then redis.call('HDEL', KEYS[1], ARGV[1]) else redis.call('HSET', KEYS[1], ARGV[1], new) end
return 1
`)

// stockScript applies one stock level. KEYS: the SKU's stock hash. ARGV:
// the region, the quantity ("" for a tombstone), its time (ms). The value
// is "<quantity>|<sold out since, ms>" (since only at 0): a level of 0
// after one of 0 keeps the earlier since. It answers 1 when the SKU is
// sold out in the region, 0 when not, -1 when forgotten.
var stockScript = redis.NewScript(`
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return -1
end
if ARGV[2] == '0' then
  local since = ARGV[3]
  local old = redis.call('HGET', KEYS[1], ARGV[1])
  if old then
    local q, s = string.match(old, '^(%d+)|(%d*)$')
    if q == '0' and s ~= nil and s ~= '' then since = s end
  end
  redis.call('HSET', KEYS[1], ARGV[1], '0|' .. since)
  return 1
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|')
return 0
`)

var scripts = []*redis.Script{deliveryScript, clickScript, restockScript, wishScript, stockScript}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// stateKind is the notification state field a delivery status sets
// besides n: sent and delivered are both delivered (an SMTP server's 250
// is all email ever says; a later delivery receipt changes nothing),
// failed, bounced and undelivered are failed, suppressed is suppressed,
// queued only notified.
func stateKind(status string) (field, counter string) {
	switch status {
	case events.StatusSent, events.StatusDelivered:
		return stateDelivered, aggkeys.Delivered
	case events.StatusFailed, events.StatusBounced, events.StatusUndelivered:
		return stateFailed, aggkeys.Failed
	case events.StatusSuppressed:
		return stateSuppressed, aggkeys.Suppressed
	}
	return stateNotified, aggkeys.Notified
}

// Wipe deletes every report aggregate (aggkeys.ReportPrefix), the markers
// and the consumer's copies of the compacted topics with them; the
// attribution hashes stay. For `engagement rebuild` only: it walks the
// whole keyspace.
func (s *Store) Wipe(ctx context.Context) (int64, error) {
	var n atomic.Int64 // the masters of a cluster are walked concurrently
	err := redisconn.Scan(ctx, s.rdb, aggkeys.ReportPrefix+"*", func(ctx context.Context, keys []string) error {
		// One DEL per key: a cluster refuses a DEL across slots.
		pipe := s.rdb.Pipeline()
		for _, k := range keys {
			pipe.Unlink(ctx, k)
		}
		cmds, err := pipe.Exec(ctx)
		if err != nil {
			return fmt.Errorf("wipe report keys: %w", err)
		}
		for _, c := range cmds {
			n.Add(c.(*redis.IntCmd).Val())
		}
		return nil
	})
	return n.Load(), err
}
