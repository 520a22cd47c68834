package stack

import (
	"context"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"backinstock/shared/testenv"
)

func TestRedisServerRestartedAfterItDies(t *testing.T) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.InfoLevel)
	r, err := startRedisServer(bin, port, filepath.Join(t.TempDir(), "redis"), zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.mu.Lock()
	first := r.cmd.Process.Pid
	_ = r.cmd.Process.Kill()
	r.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	testenv.Eventually(t, 10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		return c.Ping(ctx).Err() == nil && logs.FilterMessage("redis-server restarted").Len() == 1
	}, "redis-server back on its port")
	r.mu.Lock()
	second := r.cmd.Process.Pid
	r.mu.Unlock()
	if second == first {
		t.Fatalf("pid %d: not a new process", second)
	}
	if logs.FilterMessage("redis-server exited; restarting it").Len() != 1 {
		t.Fatalf("logs %+v", logs.All())
	}
}
