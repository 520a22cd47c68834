package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"backinstock/services/wishlist/internal/fanout"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// RunReplay is `wishlist replay --region R --from T1 --to T2`: the restocks
// of inventory.restock.v1 timestamped in [T1, T2) are fanned out again by
// the fan-out's own handler, read by a group-less partition consumer from
// the offsets for T1 up to those for T2 (kafka.ReplayWindow). It joins no
// group and commits nothing: group fanout.<region> keeps its offsets, and
// restocks after T2 are neither fanned out by the replay nor skipped by the
// group. The group's done markers are not consulted: the replay keeps its
// checkpoints under a scope of its window (fanout.Config.CheckpointScope),
// so each restock of the window is fanned out again once, a crashed replay
// resumes where it stopped, and a second run of the same window produces
// nothing. The notify topics then hold the notifications twice (same
// notification ids); the notifier's dedupe lets through only what never
// reached the edge. It prints the records per partition and what was done.
func RunReplay(ctx context.Context, cfg Config, out io.Writer, log *zap.Logger, reg *prometheus.Registry) (err error) {
	cfg.setDefaults()
	if err := cfg.ValidateReplay(); err != nil {
		return err
	}
	from, to, _ := kafka.ParseWindow(cfg.ReplayFrom, cfg.ReplayTo)
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	name := "fanout." + cfg.Region + ".replay"
	scope := fmt.Sprintf("replay-%d-%d", from.UnixMilli(), to.UnixMilli())
	log = log.With(zap.String("region", cfg.Region), zap.String("replay", name))
	d, closeAll, err := openFanout(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeInto(&err, "close", closeAll)
	view := d.view
	vctx, stopView := context.WithCancel(ctx)
	viewDone := make(chan struct{})
	go func() {
		defer close(viewDone)
		if err := view.Run(vctx); err != nil && vctx.Err() == nil {
			log.Warn("stock view stopped", zap.Error(err))
		}
	}()
	defer func() { stopView(); <-viewDone }()

	m := fanout.NewMetrics(reg, cfg.Region)
	fo, err := newFanout(cfg, d, m, scope, log)
	if err != nil {
		return err
	}
	start := time.Now()
	parts, err := kafka.ReplayWindow(ctx, cfg.Kafka, kafka.WindowOptions{
		Name: name, Topics: []string{catalog.Restock}, From: from, To: to, MaxBatch: 16, Metrics: kafka.NewMetrics(reg),
	}, fo, log)
	printReplay(out, cfg, scope, parts, m, err)
	if err != nil {
		return err
	}
	log.Info("replay done", zap.Duration("took", time.Since(start)))
	return nil
}

// printReplay writes the replay's summary.
func printReplay(out io.Writer, cfg Config, scope string, parts []kafka.WindowPartition, m *fanout.Metrics, err error) {
	state := "done"
	if err != nil {
		state = "stopped early (run it again: it resumes)"
	}
	fmt.Fprintf(out, "replay of [%s, %s) %s; group fanout.%s untouched; checkpoints %s\n", cfg.ReplayFrom, cfg.ReplayTo, state, cfg.Region, scope)
	var records int64
	for _, p := range parts {
		records += p.Records
		fmt.Fprintf(out, "  %s partition %2d: offsets %d..%d, %d records replayed", p.Topic, p.Partition, p.Start, p.End, p.Records)
		if p.Outside > 0 {
			fmt.Fprintf(out, ", %d outside the window skipped", p.Outside)
		}
		if p.Rejected > 0 {
			fmt.Fprintf(out, ", %d poison", p.Rejected)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintf(out, "  fan-outs: %d completed, %d sold out, %d already done by an earlier run of this replay\n",
		count(m.FanOuts, "completed"), count(m.FanOuts, "sold_out"), count(m.FanOuts, "already_done"))
	var produced int64
	for _, ch := range events.ChannelNames() {
		n := count(m.Produced, ch)
		produced += n
		fmt.Fprintf(out, "  %-5s %d notifications produced\n", ch, n)
	}
	fmt.Fprintf(out, "total: %d records replayed (restocks of every region; those of %s fanned out), %d notifications produced\n", records, cfg.Region, produced)
}

// count reads one series of a counter vector.
func count(c *prometheus.CounterVec, labels ...string) int64 {
	var m dto.Metric
	if err := c.WithLabelValues(labels...).Write(&m); err != nil {
		return 0
	}
	return int64(m.GetCounter().GetValue())
}
