package app

import (
	"context"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/gateway/internal/delivery"
	"backinstock/services/gateway/internal/edge"
	"backinstock/services/gateway/internal/email"
	"backinstock/services/gateway/internal/receipts"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/store"
	"backinstock/shared/httpapi"
	"backinstock/shared/kafka"
	"backinstock/shared/lifecycle"
	"backinstock/shared/natsconn"
	"backinstock/shared/redisconn"
	"backinstock/topics/unsubscribe"
)

// Run is `gateway run`: one durable edge consumer per channel, each
// message through the delivery protocol, until ctx ends; then the
// consumers stop pulling, finish and acknowledge what they hold, the
// producer flushes, NATS drains and Redis closes, in that order. Health,
// readiness and metrics are served over HTTP.
func Run(ctx context.Context, cfg Config, log *zap.Logger, reg *prometheus.Registry) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	log = log.With(zap.String("region", cfg.Region))
	providerOf, _ := parseProviders(cfg.ProviderSpec)
	templates, err := render.Load(cfg.TemplatesDir, cfg.DefaultLocale)
	if err != nil {
		return err
	}

	rdb, err := redisconn.New(ctx, cfg.RedisURL, redisconn.Options{})
	if err != nil {
		return err
	}
	defer rdb.Close()

	nc, js, err := natsconn.Connect(cfg.NATSURL, natsconn.Options{Name: "gateway-" + cfg.Region, CredsFile: cfg.NATSCreds, Token: cfg.NATSToken, CAFile: cfg.NATSCAFile}, log)
	if err != nil {
		return err
	}
	defer func() {
		// The consumers have answered every message they held by now.
		if err := natsconn.Drain(nc, 10*time.Second); err != nil {
			log.Warn("drain nats", zap.Error(err))
		}
	}()

	producer, err := kafka.NewProducer(cfg.Kafka, kafka.ProducerOptions{}, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := producer.Close(); err != nil {
			log.Warn("close kafka producer", zap.Error(err))
		}
	}()

	st := store.New(rdb, cfg.Region, cfg.AckWait, cfg.MarkerTTL)
	writer := receipts.New(producer, cfg.StatusTopic)
	dm, em := delivery.NewMetrics(reg, cfg.Region), edge.NewMetrics(reg, cfg.Region)
	crash := cfg.Crash
	if crash == nil {
		crash = crashHook(cfg.CrashAt, cfg.CrashAfterN, log)
	}

	srv := httpapi.NewServer(cfg.HTTPAddr, log, reg, nil)
	srv.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	srv.AddCheck("nats", func(context.Context) error {
		if nc.Status() != nats.CONNECTED {
			return fmt.Errorf("nats %s", nc.Status())
		}
		return nil
	})
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, producer.Client()) })

	parts := []lifecycle.Part{{Name: "http", Run: srv.Run}}
	for _, ch := range cfg.Channels {
		prov, closeProv, err := newProvider(cfg, ch, providerOf[ch], templates)
		if err != nil {
			return err
		}
		defer closeProv()
		proto := delivery.New(delivery.Options{
			Region: cfg.Region, Channel: ch, Provider: prov, Store: st, Receipts: writer,
			Policy: cfg.Policy(), Metrics: dm, Log: log, Crash: crash,
		})
		cons := edge.NewConsumer(js, proto, edge.Options{
			Region: cfg.Region, Channel: ch, Policy: cfg.Policy(), MaxAckPending: cfg.MaxAckPending,
			Workers: cfg.Workers, StopTimeout: cfg.StopTimeout, Metrics: em, Log: log.With(zap.String("channel", ch)),
		})
		srv.AddCheck("edge-"+ch, func(context.Context) error { return cons.Ready() })
		parts = append(parts, lifecycle.Part{Name: "edge-" + ch, Run: cons.Run})
	}
	if err := srv.Listen(); err != nil {
		return err
	}
	if cfg.OnListen != nil {
		cfg.OnListen(srv.Addr())
	}
	log.Info("gateway starting", zap.Strings("channels", cfg.Channels), zap.Any("providers", providerOf),
		zap.Strings("locales", templates.Locales()), zap.String("http", srv.Addr()))
	return lifecycle.Run(ctx, log, parts...)
}

// newProvider builds the provider configured for ch, and what closes it.
func newProvider(cfg Config, ch, name string, templates *render.Set) (delivery.Provider, func(), error) {
	switch name {
	case email.ProviderName:
		cl, err := email.NewClient(cfg.SMTP)
		if err != nil {
			return nil, nil, err
		}
		var opts []email.Option
		if cfg.UnsubscribeKeys != "" {
			keys, err := unsubscribe.ParseKeys(cfg.UnsubscribeKeys)
			if err != nil {
				_ = cl.Close()
				return nil, nil, fmt.Errorf("UNSUBSCRIBE_KEYS: %w", err)
			}
			opts = append(opts, email.WithUnsubscribe(keys, cfg.UnsubscribeBaseURL))
		}
		return email.NewProvider(cl, templates, cfg.MessageIDDomain, opts...), func() { _ = cl.Close() }, nil
	}
	return nil, nil, fmt.Errorf("channel %s: no provider %q", ch, name)
}

// crashHook is the test-only SIGKILL at a protocol step.
func crashHook(point string, afterN int, log *zap.Logger) func(string) bool {
	if point == "" {
		return nil
	}
	var mu sync.Mutex
	hits := 0
	return func(p string) bool {
		if p != point {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		hits++
		if hits < afterN {
			return false
		}
		log.Warn("GATEWAY_CRASH_AT reached; killing this process", zap.String("point", p), zap.Int("hit", hits))
		_ = log.Sync()
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
}
