// Package testenv starts real servers for tests: a kfake Kafka cluster, an
// embedded nats-server with JetStream and websocket, redis-server on a
// free port (an embedded Go Redis only where no binary is installed), and
// Mailpit, a real SMTP server whose API reads back what it received (one per
// test: NewMailpit). Each listens on 127.0.0.1 only. A test package shares one of each (started on
// first use) and keeps tests apart with Unique names. It also holds the
// clients that send a request with "Expect: 100-continue" (SendGoClient,
// SendRawTCP), which the services' body-limit tests share.
package testenv

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Env is one test package's servers, started lazily.
type Env struct {
	dir string

	kOnce sync.Once
	k     *Kafka
	kErr  error

	nOnce sync.Once
	n     *NATS
	nErr  error

	rOnce sync.Once
	r     *Redis
	rErr  error
}

// Main runs the package's tests with a fresh Env in *env and stops its servers
// afterwards. Use it from TestMain: os.Exit(testenv.Main(m, &env)).
func Main(m *testing.M, env **Env) int {
	dir, err := os.MkdirTemp("", "backinstock-testenv-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		return 1
	}
	e := &Env{dir: dir}
	*env = e
	code := m.Run()
	e.Close()
	_ = os.RemoveAll(dir)
	return code
}

// Close stops whatever was started.
func (e *Env) Close() {
	if e.k != nil {
		e.k.Close()
	}
	if e.n != nil {
		e.n.Close()
	}
	if e.r != nil {
		e.r.Close()
	}
}

// Kafka is the package's shared 3-broker kfake cluster.
func (e *Env) Kafka(tb testing.TB) *Kafka {
	tb.Helper()
	e.kOnce.Do(func() { e.k, e.kErr = StartKafka(3) })
	if e.kErr != nil {
		tb.Fatalf("start kafka: %v", e.kErr)
	}
	return e.k
}

// NATS is the package's shared nats-server.
func (e *Env) NATS(tb testing.TB) *NATS {
	tb.Helper()
	e.nOnce.Do(func() { e.n, e.nErr = StartNATS(NATSOptions{StoreDir: e.dir + "/nats"}) })
	if e.nErr != nil {
		tb.Fatalf("start nats: %v", e.nErr)
	}
	return e.n
}

// Redis is the package's shared Redis.
func (e *Env) Redis(tb testing.TB) *Redis {
	tb.Helper()
	e.rOnce.Do(func() { e.r, e.rErr = StartRedis(RedisOptions{Dir: e.dir + "/redis"}) })
	if e.rErr != nil {
		tb.Fatalf("start redis: %v", e.rErr)
	}
	return e.r
}

var seq atomic.Int64

// Unique returns a name no other test in this process uses: prefix, the
// test's name made id-safe, and a counter.
func Unique(tb testing.TB, prefix string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		default:
			return '-'
		}
	}, tb.Name())
	if len(name) > 60 {
		name = name[len(name)-60:]
	}
	return fmt.Sprintf("%s-%s-%d", prefix, strings.Trim(name, "-"), seq.Add(1))
}

// Eventually polls cond every 20ms until it holds or timeout passes.
func Eventually(tb testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met within %s: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
