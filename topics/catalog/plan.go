package catalog

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// ActionKind says what an Action does to the cluster.
type ActionKind int

// The actions a plan can hold. Apply runs them in this order per topic.
const (
	// CreateTopic creates a missing topic with its partitions, replication
	// factor and configs.
	CreateTopic ActionKind = iota + 1
	// GrowPartitions raises a topic's partition count (Kafka cannot lower it).
	GrowPartitions
	// SetConfig sets a topic config to the catalogue's value.
	SetConfig
	// ResetConfig removes a topic-level override the catalogue does not set,
	// so the topic falls back to the cluster default.
	ResetConfig
	// DeleteTopic deletes a topic that looks like ours but is no longer in
	// the catalogue. Only planned with allowDelete.
	DeleteTopic
)

func (k ActionKind) String() string {
	switch k {
	case CreateTopic:
		return "create"
	case GrowPartitions:
		return "grow"
	case SetConfig:
		return "set-config"
	case ResetConfig:
		return "reset-config"
	case DeleteTopic:
		return "delete"
	}
	return fmt.Sprintf("ActionKind(%d)", int(k))
}

// Action is one change to the cluster.
type Action struct {
	Kind  ActionKind
	Topic string

	// Partitions is the partition count of CreateTopic and the new count of
	// GrowPartitions; FromPartitions is the count GrowPartitions starts from.
	Partitions     int32
	FromPartitions int32
	// ReplicationFactor and Configs are those of CreateTopic.
	ReplicationFactor int16
	Configs           map[string]string

	// Config is the config name of SetConfig and ResetConfig. From is the
	// value on the cluster and FromSource where it comes from ("default",
	// "topic", "broker", or "unset" when the cluster does not report the
	// config); To is SetConfig's new value.
	Config     string
	From       string
	FromSource string
	To         string
}

func (a Action) String() string {
	switch a.Kind {
	case CreateTopic:
		var b strings.Builder
		fmt.Fprintf(&b, "+ create %s: partitions=%d replication=%d", a.Topic, a.Partitions, a.ReplicationFactor)
		for _, k := range slices.Sorted(maps.Keys(a.Configs)) {
			fmt.Fprintf(&b, " %s=%s", k, a.Configs[k])
		}
		return b.String()
	case GrowPartitions:
		return fmt.Sprintf("~ grow %s: partitions %d -> %d", a.Topic, a.FromPartitions, a.Partitions)
	case SetConfig:
		from := a.From
		if a.FromSource == "unset" {
			from = "(unset)"
		} else if a.FromSource != "topic" {
			from += " (" + a.FromSource + ")"
		}
		return fmt.Sprintf("~ config %s: %s %s -> %s", a.Topic, a.Config, from, a.To)
	case ResetConfig:
		return fmt.Sprintf("~ reset %s: %s %s -> cluster default (not in the catalogue)", a.Topic, a.Config, a.From)
	case DeleteTopic:
		return fmt.Sprintf("- delete %s", a.Topic)
	}
	return fmt.Sprintf("? %s %s", a.Kind, a.Topic)
}

// Changes is what Plan found: the actions that make the cluster match the
// catalogue, and notes on drift that apply cannot fix.
type Changes struct {
	Actions []Action
	// Notes report differences Apply leaves alone, such as a replication
	// factor that differs from the catalogue (changing it needs a partition
	// reassignment, an operator's decision).
	Notes []string
}

// Empty reports whether there is nothing to apply. Notes do not count: they
// would never go away by applying.
func (c Changes) Empty() bool { return len(c.Actions) == 0 }

// String prints one line per action, then the notes; "no changes" when empty.
func (c Changes) String() string {
	var b strings.Builder
	if c.Empty() {
		b.WriteString("no changes\n")
	}
	for _, a := range c.Actions {
		b.WriteString(a.String())
		b.WriteByte('\n')
	}
	for _, n := range c.Notes {
		b.WriteString("! ")
		b.WriteString(n)
		b.WriteByte('\n')
	}
	return b.String()
}

// Plan compares the cluster with the catalogue and returns the actions that
// make them match: create missing topics, grow partitions, set configs that
// differ, reset topic-level overrides the catalogue does not set and, only
// when allowDelete is true, delete topics that follow the naming rule, share
// a domain with the catalogue and are not in it. A topic with more partitions
// than the catalogue asks for is an error: Kafka cannot remove partitions,
// and silently keeping them would hide that the catalogue is wrong.
//
// A config is compared by its effective value whatever its source, so a
// catalogue value equal to the broker default plans nothing.
func Plan(ctx context.Context, admin sarama.ClusterAdmin, cat *Catalog, allowDelete bool) (Changes, error) {
	if err := ctx.Err(); err != nil {
		return Changes{}, err
	}
	existing, err := admin.ListTopics()
	if err != nil {
		return Changes{}, fmt.Errorf("list topics: %w", err)
	}
	current, err := describeConfigs(ctx, admin, cat, existing)
	if err != nil {
		return Changes{}, err
	}

	var ch Changes
	var shrink []error
	for _, t := range cat.Topics {
		got, ok := existing[t.Name]
		if !ok {
			ch.Actions = append(ch.Actions, Action{
				Kind: CreateTopic, Topic: t.Name, Partitions: t.Partitions,
				ReplicationFactor: t.ReplicationFactor, Configs: maps.Clone(t.Configs),
			})
			continue
		}
		switch {
		case got.NumPartitions > t.Partitions:
			shrink = append(shrink, fmt.Errorf("topic %s: partitions: the cluster has %d, the catalogue %d; Kafka cannot remove partitions (create a new topic version instead)", t.Name, got.NumPartitions, t.Partitions))
		case got.NumPartitions < t.Partitions:
			ch.Actions = append(ch.Actions, Action{Kind: GrowPartitions, Topic: t.Name, FromPartitions: got.NumPartitions, Partitions: t.Partitions})
		}
		if got.ReplicationFactor != 0 && got.ReplicationFactor != t.ReplicationFactor {
			ch.Notes = append(ch.Notes, fmt.Sprintf("%s: replication factor is %d on the cluster, %d in the catalogue; apply does not reassign replicas", t.Name, got.ReplicationFactor, t.ReplicationFactor))
		}
		cfg := current[t.Name]
		for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
			want := t.Configs[k]
			e, ok := cfg[k]
			if ok && e.Value == want {
				continue
			}
			a := Action{Kind: SetConfig, Topic: t.Name, Config: k, To: want, FromSource: "unset"}
			if ok {
				a.From, a.FromSource = e.Value, sourceName(e.Source)
			}
			ch.Actions = append(ch.Actions, a)
		}
		for _, k := range slices.Sorted(maps.Keys(cfg)) {
			e := cfg[k]
			if _, managed := t.Configs[k]; managed || e.Source != sarama.SourceTopic {
				continue
			}
			ch.Actions = append(ch.Actions, Action{Kind: ResetConfig, Topic: t.Name, Config: k, From: e.Value, FromSource: "topic"})
		}
	}
	if len(shrink) > 0 {
		return Changes{}, errors.Join(shrink...)
	}

	if allowDelete {
		domains := map[string]bool{}
		for _, t := range cat.Topics {
			domains[domainOf(t.Name)] = true
		}
		for _, name := range slices.Sorted(maps.Keys(existing)) {
			if _, ok := cat.Lookup(name); ok || !ValidName(name) || !domains[domainOf(name)] {
				continue
			}
			ch.Actions = append(ch.Actions, Action{Kind: DeleteTopic, Topic: name})
		}
	}
	return ch, nil
}

func domainOf(name string) string {
	d, _, _ := strings.Cut(name, ".")
	return d
}

// describeConfigs returns the configs of the catalogue topics that exist, in
// one request.
func describeConfigs(ctx context.Context, admin sarama.ClusterAdmin, cat *Catalog, existing map[string]sarama.TopicDetail) (map[string]map[string]sarama.ConfigEntry, error) {
	var resources []*sarama.ConfigResource
	for _, t := range cat.Topics {
		if _, ok := existing[t.Name]; ok {
			resources = append(resources, &sarama.ConfigResource{Type: sarama.TopicResource, Name: t.Name})
		}
	}
	out := map[string]map[string]sarama.ConfigEntry{}
	if len(resources) == 0 {
		return out, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	results, err := admin.DescribeConfigs(resources, sarama.DescribeConfigsOptions{})
	if err != nil {
		return nil, fmt.Errorf("describe topic configs: %w", err)
	}
	for _, r := range results {
		if r.ErrorCode != sarama.ErrNoError {
			return nil, fmt.Errorf("describe configs of topic %s: %w", r.Name, r.ErrorCode)
		}
		m := make(map[string]sarama.ConfigEntry, len(r.Configs))
		for _, e := range r.Configs {
			m[e.Name] = e
		}
		out[r.Name] = m
	}
	for _, r := range resources {
		if _, ok := out[r.Name]; !ok {
			return nil, fmt.Errorf("describe configs of topic %s: no answer from the cluster", r.Name)
		}
	}
	return out, nil
}

func sourceName(s sarama.ConfigSource) string {
	switch s {
	case sarama.SourceTopic:
		return "topic"
	case sarama.SourceDefault:
		return "default"
	case sarama.SourceDynamicBroker, sarama.SourceDynamicDefaultBroker, sarama.SourceStaticBroker:
		return "broker"
	}
	return "unknown source"
}

// Apply carries out the actions of a plan, in order, and waits until the
// cluster's metadata shows the created and grown topics, so that a plan right
// after it is empty. A topic created meanwhile by someone else, or deleted
// already, is not an error: applying twice must do no harm. Every failure is
// reported, wrapped with the topic; the remaining actions still run.
func Apply(ctx context.Context, admin sarama.ClusterAdmin, ch Changes) error {
	var errs []error
	want := map[string]int32{}
	for i := 0; i < len(ch.Actions); i++ {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		a := ch.Actions[i]
		switch a.Kind {
		case CreateTopic:
			detail := &sarama.TopicDetail{
				NumPartitions:     a.Partitions,
				ReplicationFactor: a.ReplicationFactor,
				ConfigEntries:     map[string]*string{},
			}
			for k, v := range a.Configs {
				detail.ConfigEntries[k] = &v
			}
			err := admin.CreateTopic(a.Topic, detail, false)
			if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
				errs = append(errs, fmt.Errorf("create topic %s: %w", a.Topic, err))
				continue
			}
			want[a.Topic] = a.Partitions
		case GrowPartitions:
			err := admin.CreatePartitions(a.Topic, a.Partitions, nil, false)
			if err != nil {
				errs = append(errs, fmt.Errorf("grow topic %s to %d partitions: %w", a.Topic, a.Partitions, err))
				continue
			}
			want[a.Topic] = a.Partitions
		case SetConfig, ResetConfig:
			// One request per topic: consecutive config actions of the
			// same topic go together.
			entries := map[string]sarama.IncrementalAlterConfigsEntry{}
			for ; i < len(ch.Actions) && ch.Actions[i].Topic == a.Topic &&
				(ch.Actions[i].Kind == SetConfig || ch.Actions[i].Kind == ResetConfig); i++ {
				c := ch.Actions[i]
				if c.Kind == SetConfig {
					v := c.To
					entries[c.Config] = sarama.IncrementalAlterConfigsEntry{Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &v}
				} else {
					entries[c.Config] = sarama.IncrementalAlterConfigsEntry{Operation: sarama.IncrementalAlterConfigsOperationDelete}
				}
			}
			i--
			if err := admin.IncrementalAlterConfig(sarama.TopicResource, a.Topic, entries, false); err != nil {
				errs = append(errs, fmt.Errorf("alter configs of topic %s (%s): %w", a.Topic, strings.Join(slices.Sorted(maps.Keys(entries)), ", "), err))
			}
		case DeleteTopic:
			err := admin.DeleteTopic(a.Topic)
			if err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				errs = append(errs, fmt.Errorf("delete topic %s: %w", a.Topic, err))
			}
		default:
			errs = append(errs, fmt.Errorf("apply %s to topic %s: unknown action", a.Kind, a.Topic))
		}
	}
	if len(want) > 0 {
		if err := waitForTopics(ctx, admin, want); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Sync plans and applies in one call: what the local stack and tests run to
// bring a cluster to the catalogue. It returns what it applied.
func Sync(ctx context.Context, admin sarama.ClusterAdmin, cat *Catalog, allowDelete bool) (Changes, error) {
	ch, err := Plan(ctx, admin, cat, allowDelete)
	if err != nil {
		return Changes{}, err
	}
	if err := Apply(ctx, admin, ch); err != nil {
		return ch, err
	}
	return ch, nil
}

// metadataWait bounds how long Apply waits for new topics to show in the
// metadata when ctx has no earlier deadline.
const metadataWait = 30 * time.Second

// waitForTopics polls the metadata until every topic in want has at least
// the wanted partitions. On a real cluster metadata reaches the brokers a
// moment after the controller answers; without this, a plan straight after
// apply could still show the creates.
func waitForTopics(ctx context.Context, admin sarama.ClusterAdmin, want map[string]int32) error {
	ctx, cancel := context.WithTimeout(ctx, metadataWait)
	defer cancel()
	names := slices.Sorted(maps.Keys(want))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := admin.DescribeTopics(names)
		pending := names
		if err == nil {
			pending = nil
			seen := map[string]bool{}
			for _, m := range md {
				if m.Err == sarama.ErrNoError && int32(len(m.Partitions)) >= want[m.Name] {
					seen[m.Name] = true
				}
			}
			for _, n := range names {
				if !seen[n] {
					pending = append(pending, n)
				}
			}
			if len(pending) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return fmt.Errorf("wait for topics in metadata: %w", err)
			}
			return fmt.Errorf("wait for topics %s in metadata: %w", strings.Join(pending, ", "), ctx.Err())
		case <-tick.C:
		}
	}
}

// ClusterTopic is a topic as the cluster reports it.
type ClusterTopic struct {
	Name              string
	Partitions        int32
	ReplicationFactor int16
	// Configs holds the configs that differ from the defaults.
	Configs map[string]string
}

// ListCluster returns the cluster's topics sorted by name.
func ListCluster(ctx context.Context, admin sarama.ClusterAdmin) ([]ClusterTopic, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	existing, err := admin.ListTopics()
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	out := make([]ClusterTopic, 0, len(existing))
	for _, name := range slices.Sorted(maps.Keys(existing)) {
		d := existing[name]
		t := ClusterTopic{Name: name, Partitions: d.NumPartitions, ReplicationFactor: d.ReplicationFactor, Configs: map[string]string{}}
		for k, v := range d.ConfigEntries {
			if v != nil {
				t.Configs[k] = *v
			}
		}
		out = append(out, t)
	}
	return out, nil
}
