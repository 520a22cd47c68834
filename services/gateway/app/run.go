package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/gateway/internal/delivery"
	"backinstock/services/gateway/internal/devices"
	"backinstock/services/gateway/internal/edge"
	"backinstock/services/gateway/internal/email"
	"backinstock/services/gateway/internal/fcm"
	"backinstock/services/gateway/internal/push"
	"backinstock/services/gateway/internal/ratelimit"
	"backinstock/services/gateway/internal/receipts"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/sms"
	"backinstock/services/gateway/internal/store"
	"backinstock/services/gateway/internal/webhook"
	"backinstock/services/gateway/internal/webpush"
	"backinstock/shared/httpapi"
	"backinstock/shared/kafka"
	"backinstock/shared/lifecycle"
	"backinstock/shared/natsconn"
	"backinstock/shared/optoutcheck"
	"backinstock/shared/pause"
	"backinstock/shared/redisconn"
	"backinstock/topics/clicklink"
	"backinstock/topics/events"
	"backinstock/topics/unsubscribe"
)

// Run is `gateway run`: one durable edge consumer per channel, each
// message through the delivery protocol, until ctx ends; then the
// consumers stop pulling, finish and acknowledge what they hold, the
// producer flushes, NATS drains and Redis closes, in that order. Health,
// readiness, metrics and the operator's pause/resume are served over HTTP.
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
	if cfg.ClickKeys != "" {
		keys, _ := clicklink.ParseKeys(cfg.ClickKeys) // Validate parsed them
		templates.Track(clickTracker(keys, cfg.EngagementBaseURL, cfg.ClickLinkTTL))
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
	pm := push.NewMetrics(reg, cfg.Region)
	crash := cfg.Crash
	if crash == nil {
		crash = crashHook(cfg.CrashAt, cfg.CrashAfterN, log)
	}

	limits, _ := cfg.providerLimits(providerOf)
	rm, sm := ratelimit.NewMetrics(reg, cfg.Region), sms.NewMetrics(reg, cfg.Region)
	pauseStore := pause.NewStore(rdb)
	pauses := pause.NewWatcher(pauseStore, pause.WatcherOptions{
		Region: cfg.Region, Channels: cfg.Channels, Metrics: pause.NewMetrics(reg, "backinstock_gateway_", cfg.Region), Log: log.Named("pause"),
	})
	// A replica started while its region is paused must not send before
	// its first poll.
	if err := pauses.Refresh(ctx); err != nil {
		return err
	}
	// The admin routes need the API token; provider callbacks are public
	// routes: each verifies its provider's signature instead.
	rt := httpapi.NewRouter(httpapi.RouterOptions{Token: cfg.APIToken, Metrics: httpapi.NewRouteMetrics(reg, "gateway"), Log: log})
	adminOff := ""
	if cfg.APIToken == "" {
		adminOff = "this gateway has no API_TOKEN"
	}
	pause.Routes(rt, pause.RouteOptions{Region: cfg.Region, Store: pauseStore, Watcher: pauses, Disabled: adminOff, Log: log.Named("pause")})
	if providerOf[events.ChannelSMS] == sms.ProviderName && slices.Contains(cfg.Channels, events.ChannelSMS) && cfg.PublicURL != "" {
		h := sms.NewStatusHandler(cfg.SMS.AuthToken, cfg.PublicURL, writer, sm)
		rt.Public("POST "+sms.StatusPath, "sms_status", h.Serve)
	}
	srv := httpapi.NewServer(cfg.HTTPAddr, log, reg, rt)
	srv.AddCheck("redis", func(ctx context.Context) error { return rdb.Ping(ctx).Err() })
	srv.AddCheck("nats", func(context.Context) error {
		if nc.Status() != nats.CONNECTED {
			return fmt.Errorf("nats %s", nc.Status())
		}
		return nil
	})
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, producer.Client()) })

	parts := []lifecycle.Part{{Name: "http", Run: srv.Run}, {Name: "pause-watcher", Run: pauses.Run}}
	optouts := optoutcheck.New(rdb)
	for _, ch := range cfg.Channels {
		prov, closeProv, err := newProvider(cfg, ch, providerOf[ch], templates, st, pm, sm, log)
		if err != nil {
			return err
		}
		defer closeProv()
		var lim delivery.Limiter
		if l, ok := limits[providerOf[ch]]; ok {
			lim = ratelimit.New(rdb, cfg.Region, providerOf[ch], l, rm)
		}
		proto := delivery.New(delivery.Options{
			Region: cfg.Region, Channel: ch, Provider: prov, Limiter: lim, Store: st, Receipts: writer,
			// The wishlist writes the opt-out records to this same Redis
			// (every deployment gives both one REDIS_URL).
			OptOuts: optouts,
			Policy:  cfg.Policy(), Metrics: dm, Log: log, Crash: crash, Gate: pauses.Gate(ch),
		})
		cons := edge.NewConsumer(js, proto, edge.Options{
			Region: cfg.Region, Channel: ch, Policy: cfg.Policy(), MaxAckPending: cfg.MaxAckPending,
			Workers: cfg.Workers, StopTimeout: cfg.StopTimeout, Metrics: em, Log: log.With(zap.String("channel", ch)),
			Gate: pauses.Gate(ch),
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
	log.Info("gateway starting", zap.Strings("channels", cfg.Channels), zap.Any("providers", providerOf), zap.String("rate_limits", ratelimit.Format(limits)),
		zap.Strings("locales", templates.Locales()), zap.Bool("tracked_links", cfg.ClickKeys != ""), zap.String("http", srv.Addr()))
	return lifecycle.Run(ctx, log, parts...)
}

// clickTracker signs n's tracked link: the notification's fields, its
// product URL and an expiry ttl from now (topics/clicklink).
func clickTracker(keys clicklink.Keys, base string, ttl time.Duration) render.Tracker {
	return func(n events.Notification) (string, error) {
		return keys.URL(base, clicklink.Link{
			UserID: n.UserID, SKU: n.SKU, Region: n.Region, Channel: n.Channel, Episode: n.Episode,
			URL: n.URL, Expires: time.Now().Add(ttl),
		})
	}
}

// newProvider builds the provider configured for ch, and what closes it.
func newProvider(cfg Config, ch, name string, templates *render.Set, st *store.Store, pm *push.Metrics, sm *sms.Metrics, log *zap.Logger) (delivery.Provider, func(), error) {
	pushOpts := push.Options{Templates: templates, Progress: st, Remover: devices.New(cfg.Wishlist), Metrics: pm, Log: log.With(zap.String("channel", ch))}
	switch name {
	case fcm.ProviderName:
		s, err := fcm.NewSender(cfg.FCM)
		if err != nil {
			return nil, nil, err
		}
		return push.New(s, pushOpts), func() {}, nil
	case webpush.ProviderName:
		return push.New(webpush.NewSender(cfg.WebPush), pushOpts), func() {}, nil
	case sms.ProviderName:
		p := sms.NewProvider(cfg.smsConfig(), templates, sm, log.With(zap.String("channel", ch)))
		return p, p.Close, nil
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
	case webhook.ProviderName:
		p, err := webhook.New(cfg.Webhook)
		if err != nil {
			return nil, nil, err
		}
		return p, p.Close, nil
	}
	return nil, nil, fmt.Errorf("channel %s: no provider %q", ch, name)
}
