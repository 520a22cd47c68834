// Package redisconn opens a go-redis client from REDIS_URL: a single node
// (redis:// or rediss:// for TLS, with user:password for AUTH/ACL) or a
// Redis Cluster (the same URL with more nodes as ?addr=host:port parameters,
// or REDIS_CLUSTER=true).
package redisconn

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options beyond the URL.
type Options struct {
	// Cluster forces the cluster client even for a single seed address.
	Cluster bool
	// PoolSize overrides go-redis' default (10 per CPU).
	PoolSize int
	// TLSSkipVerify skips certificate checks for rediss:// (testing only).
	TLSSkipVerify bool
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
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("REDIS_URL: scheme must be redis:// or rediss://, got %q", u.Scheme)
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
