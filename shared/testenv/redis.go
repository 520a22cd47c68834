package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// RedisOptions configure the test Redis.
type RedisOptions struct {
	Dir string
	// AppendOnly turns on AOF (fsync every second) so a restart keeps data.
	AppendOnly bool
	// Password requires AUTH.
	Password string
	// Port: 0 picks a free one.
	Port int
}

// Redis is a redis-server child process, or miniredis where none is installed.
type Redis struct {
	Addr string
	o    RedisOptions
	cmd  *exec.Cmd
	mini *miniredis.Miniredis
}

// StartRedis starts redis-server from PATH on a free port.
func StartRedis(o RedisOptions) (*Redis, error) {
	if o.Port == 0 {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		o.Port = p
	}
	r := &Redis{o: o, Addr: "127.0.0.1:" + strconv.Itoa(o.Port)}
	return r, r.start()
}

// Embedded reports whether this is the Go stand-in (no redis-server found).
func (r *Redis) Embedded() bool { return r.mini != nil }

func (r *Redis) start() error {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		m := miniredis.NewMiniRedis()
		if r.o.Password != "" {
			m.RequireAuth(r.o.Password)
		}
		if err := m.StartAddr(r.Addr); err != nil {
			return fmt.Errorf("embedded redis: %w", err)
		}
		r.mini = m
		return nil
	}
	// redis-server changes into --dir before opening its log: paths must be absolute.
	dir, err := filepath.Abs(r.o.Dir)
	if err != nil {
		return err
	}
	r.o.Dir = dir
	if err := os.MkdirAll(r.o.Dir, 0o755); err != nil {
		return err
	}
	args := []string{"--port", strconv.Itoa(r.o.Port), "--bind", "127.0.0.1", "--save", "", "--dir", r.o.Dir,
		"--dbfilename", "dump-" + strconv.Itoa(r.o.Port) + ".rdb", "--logfile", filepath.Join(r.o.Dir, "redis-"+strconv.Itoa(r.o.Port)+".log"),
		"--daemonize", "no", "--protected-mode", "no"}
	if r.o.AppendOnly {
		args = append(args, "--appendonly", "yes", "--appendfsync", "everysec", "--appenddirname", "aof-"+strconv.Itoa(r.o.Port))
	} else {
		args = append(args, "--appendonly", "no")
	}
	if r.o.Password != "" {
		args = append(args, "--requirepass", r.o.Password)
	}
	cmd := exec.Command(bin, args...)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.cmd = cmd
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.o.Password, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			r.Stop()
			return fmt.Errorf("redis-server on %s not ready: %w", r.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SingleAndSharded returns a single-node client and a one-shard ring on
// this server, closed when tb ends: code with a single-node fast path (one
// command over many keys) and a per-key path for sharded clients (whose
// keys are in different slots) is tested both ways on the same data.
func (r *Redis) SingleAndSharded(tb testing.TB) (*redis.Client, *redis.Ring) {
	single := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.o.Password})
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": r.Addr}, Password: r.o.Password})
	tb.Cleanup(func() {
		_ = single.Close()
		_ = ring.Close()
	})
	return single, ring
}

// URL is the REDIS_URL for this server.
func (r *Redis) URL() string {
	if r.o.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", r.o.Password, r.Addr)
	}
	return "redis://" + r.Addr + "/0"
}

// Stop kills the server (SIGKILL: what is not in the AOF is lost).
func (r *Redis) Stop() {
	if r.mini != nil {
		r.mini.Close()
		r.mini = nil
	}
	if r.cmd != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		r.cmd = nil
	}
}

// Restart stops and starts it on the same port and directory.
func (r *Redis) Restart() error {
	r.Stop()
	return r.start()
}

// Flush empties every database.
func (r *Redis) Flush(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr, Password: r.o.Password})
	defer c.Close()
	if err := c.FlushAll(ctx).Err(); err != nil {
		return errors.Join(errors.New("flush redis"), err)
	}
	return nil
}

// Close stops the server.
func (r *Redis) Close() { r.Stop() }

// ErrEmbedded is returned by Pause and Resume on the Go stand-in, which
// cannot be stopped the way a process can.
var ErrEmbedded = errors.New("embedded redis stand-in: no process to signal (install redis-server)")

// Pause stops the redis-server process (SIGSTOP) without closing anything:
// the kernel still accepts connections and buffers what clients send, and
// the server runs all of it when resumed. This is the stall a frozen VM, a
// long fork or a swap storm causes, which a restart does not reproduce.
func (r *Redis) Pause() error { return r.signal(syscall.SIGSTOP) }

// Resume continues a paused redis-server (SIGCONT).
func (r *Redis) Resume() error { return r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) error {
	if r.mini != nil {
		return ErrEmbedded
	}
	if r.cmd == nil {
		return errors.New("redis-server is not running")
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal redis-server %s: %w", sig, err)
	}
	return nil
}

// PID is the redis-server process id (0 for the embedded stand-in or a
// stopped server), for a benchmark that reads its CPU time.
func (r *Redis) PID() int {
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}
