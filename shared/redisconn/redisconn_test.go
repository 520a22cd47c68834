package redisconn_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
)

func TestConnectWithPasswordAndRejectWrongOne(t *testing.T) {
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir(), Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	c, err := redisconn.New(ctx, r.URL(), redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Close()

	_, err = redisconn.New(ctx, "redis://:wrong@"+r.Addr+"/0", redisconn.Options{})
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("got %v, want an error that does not leak the password", err)
	}
}

func TestParseRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"http://localhost:6379", "localhost:6379", "redis://host:notaport"} {
		if _, err := redisconn.Parse(u, redisconn.Options{}); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("%s: got %v, want an error naming REDIS_URL", u, err)
		}
	}
}

func TestClusterURLSelectsClusterClient(t *testing.T) {
	c, err := redisconn.Parse("redis://user:pw@127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002", redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client %T, want *redis.ClusterClient", c)
	}
	if o := cc.Options(); len(o.Addrs) != 3 || o.Username != "user" || o.Password != "pw" {
		t.Fatalf("cluster options %+v", o)
	}
}

// pausedRedis is a private redis-server, paused (SIGSTOP) until the test
// resumes it; skipped where only the embedded stand-in exists.
func pausedRedis(t *testing.T) *testenv.Redis {
	t.Helper()
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if r.Embedded() {
		t.Skip("no redis-server on PATH: the embedded stand-in cannot be paused")
	}
	return r
}

// TestStalledServerFailsWithinTheContextDeadline: a command, a pipeline and
// a script against a paused server give up when their context does, not
// after go-redis' read timeout and retries.
func TestStalledServerFailsWithinTheContextDeadline(t *testing.T) {
	r := pausedRedis(t)
	ctx := context.Background()
	c, err := redisconn.New(ctx, r.URL(), redisconn.Options{CommandTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = r.Resume() }()
	const deadline = 300 * time.Millisecond
	for name, op := range map[string]func(context.Context) error{
		"set": func(ctx context.Context) error { return c.Set(ctx, "k", "v", 0).Err() },
		"pipeline": func(ctx context.Context) error {
			_, err := c.Pipelined(ctx, func(p redis.Pipeliner) error { p.Incr(ctx, "n"); return nil })
			return err
		},
		"script": func(ctx context.Context) error { return c.Eval(ctx, "return 1", nil).Err() },
	} {
		cctx, cancel := context.WithTimeout(ctx, deadline)
		t0 := time.Now()
		err := op(cctx)
		took := time.Since(t0)
		cancel()
		if err == nil {
			t.Errorf("%s: succeeded against a paused server", name)
		}
		if took > deadline+stallSlack {
			t.Errorf("%s: gave up after %s, want within %s of the %s deadline", name, took, stallSlack, deadline)
		}
	}
}

// TestTimedOutScriptRunsOnce: a script that times out (here on the
// command timeout, no context deadline) is sent once; the paused server
// runs that one copy when it resumes, never a second one from a retry.
func TestTimedOutScriptRunsOnce(t *testing.T) {
	r := pausedRedis(t)
	ctx := context.Background()
	c, err := redisconn.New(ctx, r.URL(), redisconn.Options{CommandTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Idle pooled connections, as a busy service has: a retry would find
	// one ready and re-send the script on it (a new connection could not
	// even finish its handshake with the paused server).
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { _ = c.BLPop(ctx, 50*time.Millisecond, "warm").Err() })
	}
	wg.Wait()
	if err := r.Pause(); err != nil {
		t.Fatal(err)
	}
	err = c.Eval(ctx, "return redis.call('INCR', KEYS[1])", []string{"runs"}).Err()
	if err == nil {
		t.Fatal("script succeeded against a paused server")
	}
	if err := r.Resume(); err != nil {
		t.Fatal(err)
	}
	// The server runs what it buffered during the pause as soon as it
	// resumes, before this new connection's commands.
	var runs int
	testenv.Eventually(t, 10*time.Second, func() bool {
		runs, err = c.Get(ctx, "runs").Int()
		return err == nil && runs > 0
	}, "the timed-out script ran once the server resumed")
	if runs != 1 {
		t.Fatalf("the script ran %d times, want once", runs)
	}
}

func TestURLMayNotTurnRetriesOn(t *testing.T) {
	_, err := redisconn.Parse("redis://127.0.0.1:6379/0?max_retries=3", redisconn.Options{})
	if err == nil || !strings.Contains(err.Error(), "REDIS_URL") || !strings.Contains(err.Error(), "max_retries") {
		t.Fatalf("got %v, want an error naming REDIS_URL and max_retries", err)
	}
	if _, err := redisconn.Parse("redis://127.0.0.1:6379/0", redisconn.Options{CommandTimeout: -time.Second}); err == nil || !strings.Contains(err.Error(), "CommandTimeout") {
		t.Fatalf("got %v, want an error naming CommandTimeout", err)
	}
}
