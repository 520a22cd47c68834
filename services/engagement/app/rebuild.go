package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"backinstock/services/engagement/internal/reports"
	"backinstock/shared/kafka"
	"backinstock/shared/redisconn"
)

// RebuildResult counts what a rebuild did.
type RebuildResult struct {
	// Wiped is the report keys deleted before the re-read.
	Wiped int64 `json:"wiped"`
	// Records and Rejected count the records re-read and those that did
	// not decode (they were dead-lettered when first consumed).
	Records  int64 `json:"records"`
	Rejected int64 `json:"rejected"`
}

// RunRebuild is `engagement rebuild`: it wipes the report aggregates
// (every aggkeys.ReportPrefix key; the attributed orders stay) and reads
// the report consumer's topics again from the oldest record each still
// holds, the restocks first (a delivery's lag is measured from its
// restock). The report consumer group must be stopped: its live members
// would write during the wipe. Its offsets are not moved: when `engagement
// run` starts again it reads on from its commit, and the records the
// rebuild already applied count nothing twice.
func RunRebuild(ctx context.Context, cfg Config, log *zap.Logger) (res RebuildResult, err error) {
	cfg.setDefaults()
	if err := cfg.ValidateRebuild(); err != nil {
		return res, err
	}
	adm, err := kafka.NewClusterAdmin(cfg.Kafka)
	if err != nil {
		return res, err
	}
	err = kafka.CheckStopped(adm, cfg.ReportsGroup)
	if cerr := adm.Close(); cerr != nil {
		log.Warn("close kafka admin", zap.Error(cerr))
	}
	if err != nil {
		return res, fmt.Errorf("rebuild: stop `engagement run` first: %w", err)
	}
	rdb, err := redisconn.New(ctx, cfg.RedisURL, redisconn.Options{})
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, rdb.Close()) }()

	st := reports.NewStore(rdb, cfg.ReportsMarkerTTL, cfg.ReportsRetention)
	if res.Wiped, err = st.Wipe(ctx); err != nil {
		return res, err
	}
	log.Info("report aggregates wiped", zap.Int64("keys", res.Wiped))
	consumer := reports.NewConsumer(st, cfg.ReportTopics)
	start := time.Now()
	// Everything the topics hold now; what arrives later is the group's.
	from, to := time.UnixMilli(0), start.Add(24*time.Hour)
	for _, topic := range cfg.ReportTopics.List() {
		parts, err := kafka.ReplayWindow(ctx, cfg.Kafka, kafka.WindowOptions{Name: cfg.ReportsGroup + ".rebuild", Topics: []string{topic}, From: from, To: to},
			consumer, log)
		for _, p := range parts {
			res.Records += p.Records
			res.Rejected += p.Rejected
		}
		if err != nil {
			return res, fmt.Errorf("rebuild from %s: %w", topic, err)
		}
	}
	log.Info("rebuild finished", zap.Int64("records", res.Records), zap.Int64("rejected", res.Rejected), zap.Duration("took", time.Since(start)))
	return res, nil
}
