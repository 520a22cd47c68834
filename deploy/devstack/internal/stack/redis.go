package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// checkPortFree refuses a port something else listens on: devstack starts
// only servers it owns, and a server started there would fail to bind while
// the stack talked to whatever answers (a redis-server a killed devstack left
// behind, say).
func checkPortFree(port int, flag string) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%s: port %d is in use by another process; stop it or choose another port with %s", flag, port, flag)
	}
	return l.Close()
}

// Redis back-off between restarts of a redis-server that died: quick for a
// one-off crash, capped so a server that cannot start does not spin.
const (
	redisRestartMin = 100 * time.Millisecond
	redisRestartMax = 5 * time.Second
	// redisHealthyAfter: a server that ran this long resets the back-off.
	redisHealthyAfter = 30 * time.Second
	redisReadyTimeout = 15 * time.Second
	// redisStopTimeout bounds the SIGTERM shutdown (AOF flush) before SIGKILL.
	redisStopTimeout = 2 * time.Second
)

// redisServer is the stack's own redis-server child, supervised: if it exits
// while the stack runs it is started again on the same port and data dir
// (AOF), with a bounded back-off.
type redisServer struct {
	bin  string
	args []string
	addr string
	log  *zap.Logger

	stop chan struct{} // closed by Close
	done chan struct{} // closed when supervise returns

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd has exited
	started time.Time
}

// startRedisServer starts bin on port with its data under dir and returns
// once it answers PING. The caller has checked that port is free.
func startRedisServer(bin string, port int, dir string, log *zap.Logger) (*redisServer, error) {
	// redis-server changes into --dir before opening its log: paths must be absolute.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := strconv.Itoa(port)
	r := &redisServer{
		bin:  bin,
		addr: net.JoinHostPort("127.0.0.1", p),
		log:  log.With(zap.String("addr", "127.0.0.1:"+p)),
		args: []string{"--port", p, "--bind", "127.0.0.1", "--save", "", "--dir", dir,
			"--dbfilename", "dump-" + p + ".rdb", "--logfile", filepath.Join(dir, "redis-"+p+".log"),
			"--daemonize", "no", "--protected-mode", "no",
			"--appendonly", "yes", "--appendfsync", "everysec", "--appenddirname", "aof-" + p},
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if err := r.start(); err != nil {
		return nil, err
	}
	go r.supervise()
	return r, nil
}

// URL is the REDIS_URL of the server.
func (r *redisServer) URL() string { return "redis://" + r.addr + "/0" }

func (r *redisServer) start() error {
	cmd := exec.Command(r.bin, r.args...)
	// Its own process group, so a terminal's Ctrl-C reaches devstack only and
	// Redis stays up while the services drain; killed with devstack (even
	// SIGKILL) so no server outlives the stack.
	cmd.SysProcAttr = ownedChild()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server on %s: %w", r.addr, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	r.mu.Lock()
	r.cmd, r.exited, r.started = cmd, exited, time.Now()
	r.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: r.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.After(redisReadyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("redis-server on %s exited while starting (see its log under --data-dir)", r.addr)
		case <-deadline:
			r.terminate()
			return fmt.Errorf("redis-server on %s not ready within %s: %w", r.addr, redisReadyTimeout, err)
		case <-r.stop:
			return errors.New("stopped")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// supervise restarts the server each time it exits, until Close.
func (r *redisServer) supervise() {
	defer close(r.done)
	backoff := redisRestartMin
	for {
		r.mu.Lock()
		exited, started := r.exited, r.started
		r.mu.Unlock()
		select {
		case <-r.stop:
			return
		case <-exited:
		}
		if time.Since(started) > redisHealthyAfter {
			backoff = redisRestartMin
		}
		for {
			r.log.Warn("redis-server exited; restarting it", zap.Duration("after", backoff))
			select {
			case <-r.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, redisRestartMax)
			err := r.start()
			if err == nil {
				r.log.Info("redis-server restarted")
				break
			}
			select {
			case <-r.stop:
				return
			default:
			}
			r.log.Error("restart redis-server", zap.Error(err))
		}
	}
}

// terminate asks the current server to shut down (SIGTERM: it flushes the
// AOF), then kills it after redisStopTimeout, and waits for it.
func (r *redisServer) terminate() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(redisStopTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Close stops supervising, then stops the server.
func (r *redisServer) Close() {
	close(r.stop)
	<-r.done
	r.terminate()
}
