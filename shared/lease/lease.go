// Package lease is the one Redis lease of the project: a key holding its
// holder's token with a TTL, held (taken or renewed) and given up only by
// that token. The inventory relay holds one per outbox shard, the wishlist
// fan-out one per segment it pages. A token names one holding, not a
// process: two goroutines of one process never share a token, so a lease
// that lapsed and was taken by the other cannot be renewed by the first.
//
// Hand-written on purpose: two short scripts. The Redis lock libraries
// (bsm/redislock, go-redsync) take with SET NX only — no taking back a
// lapsed lease nobody took — add retry loops or a quorum of independent
// masters neither user needs, and a write fenced by the lease (the fan-out's
// segment checkpoint) must read the key in its own script anyway.
package lease

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// process names this process in tokens: host, pid and a random part (a
// pid is reused across containers).
var (
	process = func() string {
		host, _ := os.Hostname()
		return fmt.Sprintf("%s/%d/%08x", host, os.Getpid(), rand.Uint32())
	}()
	seq atomic.Uint64
)

// Token returns a holder token unique to this call: the process's name and
// a sequence number, so the key shows who holds it.
func Token() string { return process + "/" + strconv.FormatUint(seq.Add(1), 10) }

// Lease is one holder's lease on Key.
type Lease struct {
	rdb   redis.Scripter
	Key   string
	Token string
	TTL   time.Duration
}

// New is token's lease on key, lasting ttl from each Hold.
func New(rdb redis.Scripter, key, token string, ttl time.Duration) Lease {
	return Lease{rdb: rdb, Key: key, Token: token, TTL: ttl}
}

var (
	// hold takes the key when nobody holds it, renews it when the token
	// does.
	hold = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v == false or v == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0`)
	// renew extends the key only while the token holds it.
	renew = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)
	// release deletes the key only while the token holds it, so a second
	// run (or a lapsed holder's) deletes nothing.
	release = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)
)

// Hold takes the lease if it is free or renews it if it is the token's,
// for TTL; false: another token holds it. For a holder that keeps no state
// across a lapse (the relay re-reads its shard); with a fresh token it is
// a plain take.
func (l Lease) Hold(ctx context.Context) (bool, error) {
	n, err := hold.Run(ctx, l.rdb, []string{l.Key}, l.Token, l.TTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("hold lease %s: %w", l.Key, err)
	}
	return n == 1, nil
}

// Renew extends the lease for TTL while the token holds it; false once it
// lapsed, even if nobody took it since: a holder whose work is fenced by
// the lease (a checkpoint) must not take it back, because another holder
// may have come, finished and gone meanwhile.
func (l Lease) Renew(ctx context.Context) (bool, error) {
	n, err := renew.Run(ctx, l.rdb, []string{l.Key}, l.Token, l.TTL.Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", l.Key, err)
	}
	return n == 1, nil
}

// Release gives the lease up if the token holds it (nothing otherwise), so
// another holder need not wait for it to run out.
func (l Lease) Release(ctx context.Context) error {
	if err := release.Run(ctx, l.rdb, []string{l.Key}, l.Token).Err(); err != nil {
		return fmt.Errorf("release lease %s: %w", l.Key, err)
	}
	return nil
}
