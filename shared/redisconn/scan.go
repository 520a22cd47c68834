package redisconn

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// scanCount is the COUNT hint of each SCAN step: a step stays well under a
// millisecond of the server's time, and a keyspace of millions takes a few
// thousand round trips.
const scanCount = 1000

// Scan hands fn the keys matching the glob match, a step at a time, on a
// single node or on every master of a cluster (SCAN only sees the keys of
// the node it runs on; the masters are walked concurrently, so fn must be
// safe for concurrent use). A key may be handed more than once (SCAN's
// guarantee), so fn must be idempotent; keys created during the scan may be
// missed. It walks the whole keyspace whatever the pattern (MATCH filters
// on the server after the walk): for rare work such as an erasure, not for
// a request path.
func Scan(ctx context.Context, rdb redis.UniversalClient, match string, fn func(ctx context.Context, keys []string) error) error {
	scan := func(ctx context.Context, c *redis.Client) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, match, scanCount).Result()
			if err != nil {
				return fmt.Errorf("scan %s: %w", match, err)
			}
			if len(keys) > 0 {
				if err := fn(ctx, keys); err != nil {
					return err
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	switch c := rdb.(type) {
	case *redis.Client:
		return scan(ctx, c)
	case *redis.ClusterClient:
		return c.ForEachMaster(ctx, scan)
	default:
		return fmt.Errorf("scan %s: unsupported client %T", match, rdb)
	}
}
