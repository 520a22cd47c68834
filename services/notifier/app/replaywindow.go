package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"backinstock/services/notifier/internal/edge"
	"backinstock/services/notifier/internal/pipeline"
	"backinstock/services/notifier/internal/ratelimit"
	"backinstock/services/notifier/internal/store"
	"backinstock/shared/kafka"
	"backinstock/shared/natsconn"
	"backinstock/shared/optoutcheck"
	"backinstock/shared/redisconn"
	"backinstock/shared/stockview"
	topicsedge "backinstock/topics/edge"
	"backinstock/topics/events"
)

// ReplayWindow is `notifier replay --from T1 --to T2`: the records of the
// region's notify topics timestamped in [T1, T2) go through the delivery
// protocol of `notifier run` (the same pipeline: stale drop, sent markers,
// quiet hours, rate limits, Nats-Msg-Id) once more, read by a group-less
// partition consumer from the offsets for T1 up to those for T2
// (kafka.ReplayWindow). It joins no group and commits nothing, so the
// group's position is untouched: records after T2 are neither delivered by
// the replay nor skipped by the group, and the group may keep running
// meanwhile. What was delivered before is absorbed as in any replay (sent
// marker, else the stream's duplicate window), so a replay delivers only
// what never reached the edge; run after the markers are gone and outside
// the duplicate window, it delivers every record of the window once. It
// prints the records per partition and what the protocol did with them.
// Notifications held for quiet hours are released by the region's running
// notifiers.
func ReplayWindow(ctx context.Context, cfg ReplayConfig, out io.Writer, log *zap.Logger, reg *prometheus.Registry) (err error) {
	cfg.setDefaults()
	if cfg.To == "" {
		return errors.New("--to: required for a window replay")
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	from, to, _ := kafka.ParseWindow(cfg.From, cfg.To)
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	name := cfg.Group + ".replay"
	log = log.With(zap.String("region", cfg.Region), zap.String("replay", name))
	limits, _ := ratelimit.Parse(cfg.RateLimits, events.ValidChannel)

	rdb, err := redisconn.New(ctx, cfg.RedisURL, redisconn.Options{})
	if err != nil {
		return err
	}
	defer rdb.Close()
	nc, js, err := natsconn.Connect(cfg.NATSURL, natsconn.Options{Name: "notifier-" + cfg.Region + "-replay", CredsFile: cfg.NATSCreds, Token: cfg.NATSToken, CAFile: cfg.NATSCAFile}, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := natsconn.Drain(nc, 10*time.Second); err != nil {
			log.Warn("drain nats", zap.Error(err))
		}
	}()
	// The streams are `notifier run`'s, with its settings (duplicate window,
	// limits): a replay neither creates nor reconfigures them.
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	for _, name := range topicsedge.Streams(cfg.Region) {
		if _, err = js.Stream(sctx, name); err != nil {
			err = fmt.Errorf("edge stream %s (started by notifier run --region %s): %w", name, cfg.Region, err)
			break
		}
	}
	cancel()
	if err != nil {
		return err
	}
	pub, err := edge.NewPublisher(nc, cfg.MaxPending, cfg.PublishTimeout)
	if err != nil {
		return err
	}

	var stock pipeline.StockLevels
	if cfg.StaleDrop {
		view, stop, err := startStockView(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer stop()
		stock = view
	}
	metrics := pipeline.NewMetrics(reg, cfg.Region)
	proc := pipeline.New(pipeline.Options{
		Region: cfg.Region, Store: store.New(rdb, cfg.Region, cfg.MarkerTTL), Pub: pub,
		Limits: ratelimit.NewSet(limits), Stock: stock, Now: cfg.Now, Metrics: metrics, Log: log,
		// A replay honours today's opt-outs as the live path does.
		OptOuts: optoutcheck.New(rdb),
	})
	start := time.Now()
	parts, err := kafka.ReplayWindow(ctx, cfg.Kafka, kafka.WindowOptions{
		Name: name, Topics: cfg.Topics(), From: from, To: to, MaxBatch: cfg.MaxBatch, Metrics: kafka.NewMetrics(reg),
	}, proc, log)
	// What was done is printed even when the run failed part-way: a rerun
	// is safe, and the operator sees how far it got.
	printWindow(out, cfg, parts, metrics, err)
	if err != nil {
		return err
	}
	log.Info("replay done", zap.Duration("took", time.Since(start)))
	return nil
}

// startStockView reads inventory.stock.v1 as `notifier run` does, so the
// replay drops what sold out again; stop ends it.
func startStockView(ctx context.Context, cfg ReplayConfig, log *zap.Logger) (*stockview.View, func(), error) {
	cl, err := kafka.NewClient(cfg.Kafka)
	if err != nil {
		return nil, nil, err
	}
	view, err := stockview.New(cl, stockview.Config{Region: cfg.Region, CatchUpTimeout: cfg.StockReadyTimeout}, log)
	if err != nil {
		_ = cl.Close()
		return nil, nil, err
	}
	vctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := view.Run(vctx); err != nil && vctx.Err() == nil {
			log.Warn("stock view stopped", zap.Error(err))
		}
	}()
	stop := func() {
		cancel()
		<-done
		if err := cl.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
			log.Warn("close stock view client", zap.Error(err))
		}
	}
	if err := view.CatchUp(ctx); err != nil {
		// As `notifier run`: a view behind drops less, it sends nothing twice.
		log.Warn("stock view not caught up; replaying anyway", zap.Error(err))
	}
	return view, stop, nil
}

// printWindow writes the replay's summary: the records per partition, then
// per channel what the protocol did with them.
func printWindow(out io.Writer, cfg ReplayConfig, parts []kafka.WindowPartition, m *pipeline.Metrics, err error) {
	state := "done"
	if err != nil {
		state = "stopped early"
	}
	fmt.Fprintf(out, "replay of [%s, %s) %s; group %s untouched\n", cfg.From, cfg.To, state, cfg.Group)
	width := 0
	for _, p := range parts {
		width = max(width, len(p.Topic))
	}
	var records int64
	for _, p := range parts {
		records += p.Records
		fmt.Fprintf(out, "  %-*s partition %2d: offsets %d..%d, %d records replayed", width, p.Topic, p.Partition, p.Start, p.End, p.Records)
		if p.Outside > 0 {
			fmt.Fprintf(out, ", %d outside the window skipped", p.Outside)
		}
		if p.Rejected > 0 {
			fmt.Fprintf(out, ", %d poison", p.Rejected)
		}
		fmt.Fprintln(out)
	}
	var sent, deduped int64
	for _, ch := range cfg.Channels {
		s, r, j := count(m.Sent, ch), count(m.Deduped, ch, "redis"), count(m.Deduped, ch, "jetstream")
		h, st := count(m.Held, ch), count(m.DroppedStale, ch)
		sent += s
		deduped += r + j
		fmt.Fprintf(out, "  %-5s sent %d, skipped by dedupe %d (sent marker %d, edge duplicate %d), held for quiet hours %d, dropped stale %d\n",
			ch, s, r+j, r, j, h, st)
	}
	fmt.Fprintf(out, "total: %d records replayed, %d sent, %d skipped by dedupe\n", records, sent, deduped)
}

// count reads one series of a counter vector.
func count(c *prometheus.CounterVec, labels ...string) int64 {
	var m dto.Metric
	if err := c.WithLabelValues(labels...).Write(&m); err != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}
