// Package redisconn opens a go-redis client from REDIS_URL: a single node
// (redis:// or rediss:// for TLS, with user:password for AUTH/ACL) or a
// Redis Cluster (the same URL with more nodes as ?addr=host:port parameters,
// or REDIS_CLUSTER=true).
//
// Every client it returns fails fast and runs each command at most once:
//
//   - ContextTimeoutEnabled: the caller's context deadline is the socket
//     deadline (and bounds the wait for a pooled connection), so an HTTP
//     write with a 4 s budget gives up after 4 s, not after go-redis' own
//     read timeout multiplied by its retries (30-35 s were seen with a
//     stalled redis-server).
//   - MaxRetries off: go-redis re-sends a command after a read timeout, but a
//     timeout does not mean the command was not run: a stalled server runs
//     both copies once it resumes, and a non-idempotent script (the
//     inventory's apply.lua) then applies twice. Callers retry whole units
//     of work instead, where they know what is safe to repeat (the API with
//     an Idempotency-Key, the relays and consumer groups with their own loops).
//   - CommandTimeout bounds a command whose context has no earlier deadline
//     (the relays' and workers' loops), so a stalled server is noticed.
//
// The cluster client keeps one retry of its own on a timeout (to the same
// node, after a backoff that waits on the context): with a context deadline
// shorter than CommandTimeout, as every HTTP write has, that retry finds the
// context ended and sends nothing.
package redisconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/config"
)

// DefaultCommandTimeout is Options.CommandTimeout's default: go-redis' own
// read timeout, long enough for the largest pipelines here (a fan-out page,
// an import batch) on a loaded machine.
const DefaultCommandTimeout = 5 * time.Second

// Options beyond the URL; zero values take the defaults.
type Options struct {
	// Cluster forces the cluster client even for a single seed address.
	Cluster bool
	// PoolSize overrides go-redis' default (10 per CPU).
	PoolSize int
	// TLSSkipVerify skips certificate checks for rediss:// (testing only).
	TLSSkipVerify bool
	// CommandTimeout bounds each socket read and write of a command whose
	// context has no earlier deadline. A read_timeout or write_timeout in
	// the URL takes precedence.
	CommandTimeout time.Duration
}

func (o *Options) setDefaults() {
	config.Default(&o.CommandTimeout, DefaultCommandTimeout)
}

// Validate names every wrong setting.
func (o Options) Validate() error {
	var p config.Problems
	config.NotNegative(&p, "PoolSize", o.PoolSize)
	config.NotNegative(&p, "CommandTimeout", o.CommandTimeout)
	return p.Err()
}

// New parses rawURL and returns a client after a PING, so a wrong address or
// password is reported at start-up.
func New(ctx context.Context, rawURL string, o Options) (redis.UniversalClient, error) {
	c, err := Parse(rawURL, o)
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := c.Ping(pctx).Err(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("redis %s: %w", redact(rawURL), err)
	}
	return c, nil
}

// Parse builds the client without connecting.
func Parse(rawURL string, o Options) (redis.UniversalClient, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("redis options: %w", err)
	}
	o.setDefaults()
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("REDIS_URL: scheme must be redis:// or rediss://, got %q", u.Scheme)
	}
	if v := u.Query().Get("max_retries"); v != "" && v != "-1" && v != "0" {
		return nil, fmt.Errorf("REDIS_URL: max_retries=%s: retries stay off (a command retried after a timeout may run twice); the services retry whole operations themselves", v)
	}
	if o.Cluster || u.Query().Has("addr") {
		co, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		if o.PoolSize > 0 {
			co.PoolSize = o.PoolSize
		}
		if co.TLSConfig != nil {
			co.TLSConfig.InsecureSkipVerify = o.TLSSkipVerify //nolint:gosec // opt-in
			co.TLSConfig.MinVersion = tls.VersionTLS12
		}
		co.MaxRetries = -1
		co.ContextTimeoutEnabled = true
		config.Default(&co.ReadTimeout, o.CommandTimeout)
		config.Default(&co.WriteTimeout, o.CommandTimeout)
		return redis.NewClusterClient(co), nil
	}
	so, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if o.PoolSize > 0 {
		so.PoolSize = o.PoolSize
	}
	if so.TLSConfig != nil {
		so.TLSConfig.InsecureSkipVerify = o.TLSSkipVerify //nolint:gosec // opt-in
		so.TLSConfig.MinVersion = tls.VersionTLS12
	}
	so.MaxRetries = -1
	so.ContextTimeoutEnabled = true
	config.Default(&so.ReadTimeout, o.CommandTimeout)
	config.Default(&so.WriteTimeout, o.CommandTimeout)
	return redis.NewClient(so), nil
}

// redact hides the password of a URL for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	return u.Redacted()
}
