package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/services/engagement/internal/api"
	"backinstock/services/engagement/internal/attribution"
	"backinstock/services/engagement/internal/eventlog"
	"backinstock/services/engagement/internal/ordermark"
	"backinstock/services/engagement/internal/reports"
	"backinstock/services/engagement/internal/store"
	"backinstock/shared/backoff"
	"backinstock/shared/httpapi"
	"backinstock/shared/kafka"
	"backinstock/shared/lifecycle"
	"backinstock/shared/redisconn"
	"backinstock/topics/clicklink"
)

// Run is `engagement run`: the tracked links, the API and the report page
// over HTTP, and the attribution and report consumer groups, until ctx
// ends; then the consumer
// finishes its batches and commits, the server stops taking requests and
// finishes those in flight (their events acknowledged), the producer
// flushes and Redis closes, in that order. Kafka being down does not stop
// it from starting or from redirecting clicks.
func Run(ctx context.Context, cfg Config, log *zap.Logger, reg *prometheus.Registry) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	keys, _ := clicklink.ParseKeys(cfg.ClickKeys) // Validate parsed them

	rdb, err := redisconn.New(ctx, cfg.RedisURL, redisconn.Options{})
	if err != nil {
		return err
	}
	defer rdb.Close()

	kcfg := cfg.Kafka
	if kcfg.ClientID == "" {
		kcfg.ClientID = "engagement"
	}
	producer, err := kafka.NewProducer(kcfg, kafka.ProducerOptions{}, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := producer.Close(); err != nil {
			log.Warn("close kafka producer", zap.Error(err))
		}
	}()

	st := store.New(rdb)
	rs := reports.NewStore(rdb, cfg.ReportsMarkerTTL, cfg.ReportsRetention)
	handler := api.New(api.Options{
		Token: cfg.APIToken, Keys: keys, Counters: st, ClickLog: eventlog.Clicks(producer, cfg.ClicksTopic),
		OrderMarks: ordermark.New(rdb), OrderLog: eventlog.Orders(producer, cfg.OrdersTopic), Reports: rs,
		RequestTimeout: cfg.RequestTimeout, Metrics: api.NewMetrics(reg),
		RouteMetrics: httpapi.NewRouteMetrics(reg, "engagement"), Log: log.Named("api"), Now: cfg.Now,
	})
	srv := httpapi.NewServer(cfg.HTTPAddr, log.Named("http"), reg, handler)
	srv.AddCheck("redis", st.Ping)
	srv.AddCheck("kafka", func(ctx context.Context) error { return kafka.Ping(ctx, producer.Client()) })
	if err := srv.Listen(); err != nil {
		return err
	}
	if cfg.OnListen != nil {
		cfg.OnListen(srv.Addr())
	}
	log.Info("engagement starting", zap.String("http", srv.Addr()), zap.String("clicks_topic", cfg.ClicksTopic), zap.Int("click_keys", len(keys)),
		zap.String("attribution_group", cfg.AttributionGroup), zap.String("reports_group", cfg.ReportsGroup))
	// One kafka.Metrics per registry: every consumer group of the service
	// shares it.
	groupMetrics := kafka.NewMetrics(reg)
	reportOpts := kafka.GroupOptions{Group: cfg.ReportsGroup, Topics: cfg.ReportTopics.List(), DeadLetterTopic: cfg.DeadLetterTopic, Metrics: groupMetrics}
	parts := []lifecycle.Part{
		{Name: "http", Run: srv.Run},
		{Name: "reports", Run: func(ctx context.Context) error {
			return runGroup(ctx, kcfg, reportOpts, reports.NewConsumer(rs, cfg.ReportTopics), log.Named("reports"))
		}},
	}
	if cfg.AttributionGroup != AttributionOff {
		topics := attribution.Topics{Clicks: cfg.ClicksTopic, Status: cfg.StatusTopic, Orders: cfg.OrdersTopic}
		h := attribution.NewHandler(attribution.NewStore(rdb, attribution.Windows{Click: cfg.ClickWindow, View: cfg.ViewWindow, Horizon: cfg.Horizon}),
			topics, attribution.NewMetrics(reg), log.Named("attribution"))
		opts := kafka.GroupOptions{Group: cfg.AttributionGroup, Topics: topics.List(), DeadLetterTopic: cfg.DeadLetterTopic, Metrics: groupMetrics}
		parts = append(parts, lifecycle.Part{Name: "attribution", Run: func(ctx context.Context) error {
			return runGroup(ctx, kcfg, opts, h, log.Named("attribution"))
		}})
	}
	return lifecycle.Run(ctx, log, parts...)
}

// AttributionOff as ATTRIBUTION_GROUP runs no attribution consumer.
const AttributionOff = "off"

// runGroup connects the consumer group, again and again while Kafka cannot
// be reached (the links keep being served meanwhile), and runs it.
func runGroup(ctx context.Context, kcfg kafka.Config, opts kafka.GroupOptions, h kafka.Handler, log *zap.Logger) error {
	wait := backoff.New(time.Second, 30*time.Second)
	for {
		g, err := kafka.NewGroup(kcfg, opts, h, log)
		if err == nil {
			return g.Run(ctx)
		}
		log.Warn("consumer group not connected", zap.String("group", opts.Group), zap.Duration("retry_within", wait.Ceiling()), zap.Error(err))
		if !wait.Wait(ctx) {
			return nil
		}
	}
}
