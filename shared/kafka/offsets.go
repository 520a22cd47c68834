package kafka

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/IBM/sarama"
)

// ErrGroupActive marks a refusal to move the offsets of a group that has
// live members: they would overwrite the new offsets with their next commit,
// and a broker refuses an outside commit to such a group anyway.
var ErrGroupActive = errors.New("consumer group has active members")

// Offsets are offsets by topic and partition.
type Offsets map[string]map[int32]int64

// Set records off for topic/partition.
func (o Offsets) Set(topic string, partition int32, off int64) {
	if o[topic] == nil {
		o[topic] = map[int32]int64{}
	}
	o[topic][partition] = off
}

// Get is the offset of topic/partition and whether there is one.
func (o Offsets) Get(topic string, partition int32) (int64, bool) {
	off, ok := o[topic][partition]
	return off, ok
}

// CheckStopped returns nil when group has no members (it is empty, or has
// never existed), and an ErrGroupActive naming the group, its member count
// and state otherwise.
func CheckStopped(adm sarama.ClusterAdmin, group string) error {
	descs, err := adm.DescribeConsumerGroups([]string{group})
	if err != nil {
		return fmt.Errorf("describe group %s: %w", group, err)
	}
	for _, d := range descs {
		if d.GroupId == group && len(d.Members) > 0 {
			return fmt.Errorf("%w: group %s has %d active member(s) (state %s); stop its consumers first", ErrGroupActive, group, len(d.Members), d.State)
		}
	}
	return nil
}

// Committed returns the offsets group has committed on the given
// partitions, or on every partition when tps is nil. Partitions without a
// commit are left out; a group that has never committed has none.
func Committed(adm sarama.ClusterAdmin, group string, tps map[string][]int32) (Offsets, error) {
	resp, err := adm.ListConsumerGroupOffsets(group, tps)
	if errors.Is(err, sarama.ErrGroupIDNotFound) {
		return Offsets{}, nil // kfake answers so for a group that never existed; Kafka answers no offsets
	}
	if err != nil {
		return nil, fmt.Errorf("committed offsets of group %s: %w", group, err)
	}
	out := Offsets{}
	for topic, parts := range resp.Blocks {
		for p, b := range parts {
			if !errors.Is(b.Err, sarama.ErrNoError) {
				return nil, fmt.Errorf("committed offset of group %s on %s/%d: %w", group, topic, p, b.Err)
			}
			if b.Offset >= 0 {
				out.Set(topic, p, b.Offset)
			}
		}
	}
	return out, nil
}

// OffsetAt is the offset of the first record of topic/partition whose
// timestamp is at or after t, or the partition's end when there is none
// (Kafka's own rule for a reset to a time).
func OffsetAt(cl sarama.Client, topic string, partition int32, t time.Time) (int64, error) {
	off, err := cl.GetOffset(topic, partition, t.UnixMilli())
	if err == nil && off < 0 {
		off, err = cl.GetOffset(topic, partition, sarama.OffsetNewest)
	}
	if err != nil {
		return 0, fmt.Errorf("offset of %s/%d at %s: %w", topic, partition, t.Format(time.RFC3339Nano), err)
	}
	return off, nil
}

// CommitStopped commits offs for group from outside the group (no member
// id, no generation): the way to move a stopped group. It refuses a group
// with members (ErrGroupActive), and reads the offsets back afterwards, so
// a broker that accepted the commit and did not keep it is an error too.
func CommitStopped(cl sarama.Client, adm sarama.ClusterAdmin, group string, offs Offsets, metadata string) error {
	if err := CheckStopped(adm, group); err != nil {
		return err
	}
	req := sarama.NewOffsetCommitRequest(cl.Config(), group)
	tps := map[string][]int32{}
	for _, topic := range slices.Sorted(maps.Keys(offs)) {
		for _, p := range slices.Sorted(maps.Keys(offs[topic])) {
			req.AddBlock(topic, p, offs[topic][p], 0, metadata)
			tps[topic] = append(tps[topic], p)
		}
	}
	if len(tps) == 0 {
		return nil
	}
	if err := cl.RefreshCoordinator(group); err != nil {
		return fmt.Errorf("coordinator of group %s: %w", group, err)
	}
	coord, err := cl.Coordinator(group)
	if err != nil {
		return fmt.Errorf("coordinator of group %s: %w", group, err)
	}
	resp, err := coord.CommitOffset(req)
	if err != nil {
		return fmt.Errorf("commit offsets of group %s: %w", group, err)
	}
	var errs []error
	for _, topic := range slices.Sorted(maps.Keys(resp.Errors)) {
		for _, p := range slices.Sorted(maps.Keys(resp.Errors[topic])) {
			kerr := resp.Errors[topic][p]
			switch {
			case errors.Is(kerr, sarama.ErrNoError):
			case errors.Is(kerr, sarama.ErrUnknownMemberId), errors.Is(kerr, sarama.ErrIllegalGeneration), errors.Is(kerr, sarama.ErrRebalanceInProgress):
				// A member joined between the check and the commit.
				return fmt.Errorf("%w: group %s gained a member while its offsets were being reset (%v); stop its consumers first", ErrGroupActive, group, kerr)
			default:
				errs = append(errs, fmt.Errorf("commit %s/%d for group %s: %w", topic, p, group, kerr))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	after, err := Committed(adm, group, tps)
	if err != nil {
		return err
	}
	for topic, parts := range tps {
		for _, p := range parts {
			switch got, ok := after.Get(topic, p); {
			case !ok:
				errs = append(errs, fmt.Errorf("group %s on %s/%d: committed %d, read back nothing", group, topic, p, offs[topic][p]))
			case got != offs[topic][p]:
				errs = append(errs, fmt.Errorf("group %s on %s/%d: committed %d, read back %d", group, topic, p, offs[topic][p], got))
			}
		}
	}
	return errors.Join(errs...)
}
