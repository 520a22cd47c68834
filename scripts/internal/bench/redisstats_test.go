package bench

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/testenv"
)

// TestRedisCommandsPerMillion: commands run between two reads of a real
// redis-server's INFO commandstats come out with their calls per million
// notifications; commands not run since the first read do not.
func TestRedisCommandsPerMillion(t *testing.T) {
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Embedded() {
		t.Skip("the embedded Redis keeps no INFO commandstats")
	}
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	if err := rdb.Get(ctx, "before").Err(); err != redis.Nil {
		t.Fatal(err)
	}
	a, err := redisCommands(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := rdb.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := redisCommands(ctx, rdb)
	if err != nil {
		t.Fatal(err)
	}
	got := commandsPerMillion(a, b, 1_000_000)
	if !strings.Contains(got, "set 3 calls") || strings.Contains(got, "get ") {
		t.Fatalf("per million of 3 SETs over 1M notifications, after a GET before: %q", got)
	}
}
