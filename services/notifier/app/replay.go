package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// ReplayConfig is the configuration of `notifier replay`. Without To it
// resets the stopped group to From (Kafka, Region, Channels and Group are
// used); with To it is a window replay (ReplayWindow), which delivers with
// the settings `notifier run` binds for the protocol (bindDelivery).
type ReplayConfig struct {
	Config
	// From is an RFC 3339 time or "beginning".
	From string
	// To, an RFC 3339 time after From, bounds a window replay: the records
	// timestamped in [From, To) are delivered again by a group-less run
	// that leaves the group's offsets alone.
	To string
}

// Bind registers the replay settings.
func (c *ReplayConfig) Bind(s *config.Set) {
	c.bindDelivery(s, defaults())
	s.String(&c.From, "from", "", "", `where to start: an RFC 3339 time (e.g. 2026-11-24T08:00:00Z) or "beginning" (required)`)
	s.String(&c.To, "to", "", "", "replay only the records timestamped before this RFC 3339 time, in a bounded run beside the group, which keeps its offsets (empty: reset the stopped group to --from)")
}

// Validate names every setting that is wrong.
func (c ReplayConfig) Validate() error {
	var p config.Problems
	if c.To != "" {
		c.validateDelivery(&p)
		_, _, err := kafka.ParseWindow(c.From, c.To)
		p.Add(err)
		return p.Err()
	}
	p.Add(c.Kafka.Validate())
	if !events.ValidRegion(c.Region) {
		p.Addf("REGION", "%q is not a region id", c.Region)
	}
	for _, ch := range c.Channels {
		if !events.ValidChannel(ch) {
			p.Addf("NOTIFIER_CHANNELS", "%q is not a channel", ch)
		}
	}
	if _, _, err := parseFrom(c.From); err != nil {
		p.Addf("--from", "%v", err)
	}
	return p.Err()
}

// parseFrom reads --from: an RFC 3339 time, or "beginning".
func parseFrom(s string) (t time.Time, beginning bool, err error) {
	if s == kafka.Beginning {
		return time.Time{}, true, nil
	}
	t, err = time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("%q is neither an RFC 3339 time nor \"beginning\"", s)
	}
	return t, false, nil
}

// ErrGroupActive is returned when the group still has members: offsets of a
// running group would be overwritten by its next commit.
var ErrGroupActive = errors.New("consumer group has active members; stop the notifiers of this region first")

// Replay is `notifier replay`. With To it is a window replay
// (ReplayWindow). Without, it resets the group's committed offsets on the
// region's notify topics to the first record at or after From (or the
// oldest), and prints old → new per partition. Replayed notifications are
// absorbed by the dedupe layers, so a replay delivers only what was never
// delivered. reg (nil: none) receives a window replay's metrics.
func Replay(ctx context.Context, cfg ReplayConfig, out io.Writer, log *zap.Logger, reg *prometheus.Registry) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.To != "" {
		return ReplayWindow(ctx, cfg, out, log, reg)
	}
	from, beginning, _ := parseFrom(cfg.From)
	cl, err := kafka.NewClient(cfg.Kafka)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		return fmt.Errorf("kafka admin: %w", err)
	}
	// Not adm.Close: it would close the shared client too early.
	descs, err := adm.DescribeConsumerGroups([]string{cfg.Group})
	if err != nil {
		return fmt.Errorf("describe group %s: %w", cfg.Group, err)
	}
	for _, d := range descs {
		if len(d.Members) > 0 {
			return fmt.Errorf("%w: %s is %s with %d member(s)", ErrGroupActive, cfg.Group, d.State, len(d.Members))
		}
	}

	type change struct {
		topic    string
		part     int32
		old, new int64
	}
	var changes []change
	req := sarama.NewOffsetCommitRequest(cl.Config(), cfg.Group)
	tps := map[string][]int32{}
	for _, ch := range cfg.Channels {
		topic := catalog.Notify(cfg.Region, ch)
		parts, err := cl.Partitions(topic)
		if err != nil {
			return fmt.Errorf("partitions of %s: %w", topic, err)
		}
		tps[topic] = parts
	}
	committed := map[string]map[int32]int64{}
	if resp, err := adm.ListConsumerGroupOffsets(cfg.Group, tps); err == nil {
		for topic, parts := range tps {
			committed[topic] = map[int32]int64{}
			for _, p := range parts {
				if b := resp.GetBlock(topic, p); b != nil && b.Err == sarama.ErrNoError {
					committed[topic][p] = b.Offset
				} else {
					committed[topic][p] = -1
				}
			}
		}
	} else {
		log.Info("group has no committed offsets yet", zap.String("group", cfg.Group), zap.Error(err))
	}
	topics := make([]string, 0, len(tps))
	for t := range tps {
		topics = append(topics, t)
	}
	slices.Sort(topics)
	for _, topic := range topics {
		for _, p := range tps[topic] {
			var off int64
			if beginning {
				off, err = cl.GetOffset(topic, p, sarama.OffsetOldest)
			} else {
				off, err = cl.GetOffset(topic, p, from.UnixMilli())
				if err == nil && off < 0 { // no record at or after from: the end
					off, err = cl.GetOffset(topic, p, sarama.OffsetNewest)
				}
			}
			if err != nil {
				return fmt.Errorf("offset of %s/%d for %s: %w", topic, p, cfg.From, err)
			}
			old := int64(-1)
			if m, ok := committed[topic]; ok {
				old = m[p]
			}
			changes = append(changes, change{topic, p, old, off})
			req.AddBlock(topic, p, off, 0, "notifier replay --from "+cfg.From)
		}
	}
	coord, err := cl.Coordinator(cfg.Group)
	if err != nil {
		return fmt.Errorf("coordinator of %s: %w", cfg.Group, err)
	}
	resp, err := coord.CommitOffset(req)
	if err != nil {
		return fmt.Errorf("commit offsets of %s: %w", cfg.Group, err)
	}
	var errs []error
	for topic, ps := range resp.Errors {
		for p, kerr := range ps {
			if kerr != sarama.ErrNoError {
				errs = append(errs, fmt.Errorf("%s/%d: %w", topic, p, kerr))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("commit offsets of %s: %w", cfg.Group, err)
	}
	fmt.Fprintf(out, "group %s reset to %s\n", cfg.Group, cfg.From)
	for _, c := range changes {
		old := "none"
		if c.old >= 0 {
			old = fmt.Sprint(c.old)
		}
		fmt.Fprintf(out, "  %-*s partition %2d: %s -> %d\n", maxLen(topics), c.topic, c.part, old, c.new)
	}
	return nil
}

func maxLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n = max(n, len(s))
	}
	return n
}
