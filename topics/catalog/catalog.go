// Package catalog is the topic catalogue: the parsed, validated form of
// topics/catalog.yaml, the topic-name helpers every service uses, and the
// plan/apply logic that makes a Kafka cluster match the catalogue.
//
// Services name topics only through this package (Restock, Notify(...)), so a
// topic that is not in the catalogue cannot be produced to by mistake, and the
// local stack and the tests create exactly the topics production has.
package catalog

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"backinstock/topics"
	"backinstock/topics/events"
)

// Topic names fixed by the catalogue. The catalogue test checks that each of
// them is in catalog.yaml.
const (
	// Restock carries events.RestockEvent, key = sku.
	Restock = "inventory.restock.v1"
	// Stock carries events.StockLevel, compacted, key = "<sku>|<region>".
	Stock = "inventory.stock.v1"
	// WishlistChanges carries events.WishlistChange (or a tombstone for a
	// remove), compacted, key = "<user_id>|<sku>", and
	// events.WishlistPreferences under key "<user_id>|~prefs"
	// (events.PreferencesKey).
	WishlistChanges = "wishlist.changes.v1"
	// DeliveryStatus carries events.DeliveryStatus, key = notification id:
	// every delivery outcome the gateways and providers report.
	DeliveryStatus = "delivery.status.v1"
	// Clicks carries events.ClickEvent, key = notification id: every
	// follow of a notification's tracked link (the engagement service).
	Clicks = "engagement.clicks.v1"
	// Orders carries events.Order, key = order id: the shop's purchases,
	// the input of conversion attribution (the engagement service).
	Orders = "orders.v1"
	// DeadLetter receives poison records from every consumer.
	DeadLetter = "deadletter.v1"
	// NotifyTemplate is the catalogue entry expanded into one topic per
	// region and channel.
	NotifyTemplate = "notify.{region}.{channel}.v1"
)

// DefaultRegions are the regions the catalogue is expanded over when its
// YAML does not list any.
var DefaultRegions = []string{"us-east-1", "eu-west-1", "ap-south-1"}

// Notify is the topic of notification requests for region and channel.
func Notify(region, channel string) string {
	return "notify." + region + "." + channel + ".v1"
}

// ParseNotify reads region and channel back from a topic Notify built, so a
// consumer of several notify topics learns a batch's channel from the topic
// without knowing how the name is spelled. ok is false for any other topic,
// including one whose region or channel is not valid per topics/events.
func ParseNotify(topic string) (region, channel string, ok bool) {
	parts := strings.Split(topic, ".")
	if len(parts) != 4 || parts[0] != "notify" || parts[3] != "v1" ||
		!events.ValidRegion(parts[1]) || !events.ValidChannel(parts[2]) {
		return "", "", false
	}
	return parts[1], parts[2], true
}

// Template placeholders in catalogue names.
const (
	placeholderRegion  = "{region}"
	placeholderChannel = "{channel}"
)

// Topic is one Kafka topic of the catalogue.
type Topic struct {
	Name              string `yaml:"name"`
	Description       string `yaml:"description"`
	Partitions        int32  `yaml:"partitions"`
	ReplicationFactor int16  `yaml:"replication_factor"`
	// Key describes the record key, e.g. "sku" or "user|sku".
	Key string `yaml:"key"`
	// Value is the schema name of the record value (see
	// events.SchemaNames), or "" when the value is raw bytes (dead letters).
	Value   string            `yaml:"value"`
	Configs map[string]string `yaml:"configs,omitempty"`
}

// Catalog is the whole catalogue. Topics are expanded: a templated YAML entry
// is one Topic per region and channel here.
type Catalog struct {
	Regions  []string `yaml:"regions,omitempty"`
	Channels []string `yaml:"channels,omitempty"`
	Topics   []Topic  `yaml:"topics"`
}

// Default loads the catalogue embedded in the topics module.
func Default() (*Catalog, error) {
	c, err := Load(topics.CatalogYAML)
	if err != nil {
		return nil, fmt.Errorf("embedded catalogue: %w", err)
	}
	return c, nil
}

// Load parses a catalogue strictly (an unknown or misspelt YAML field is an
// error, not a silently ignored setting), expands templated entries over the
// regions and channels (defaults: DefaultRegions, events.ChannelNames) and validates the
// result. The error lists every problem, each naming the topic and field.
func Load(data []byte) (*Catalog, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var raw Catalog
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("parse catalogue: empty document")
		}
		return nil, fmt.Errorf("parse catalogue: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("parse catalogue: more than one YAML document")
	}
	if raw.Regions == nil {
		raw.Regions = slices.Clone(DefaultRegions)
	}
	if raw.Channels == nil {
		raw.Channels = events.ChannelNames()
	}

	probs := checkLists(raw.Regions, raw.Channels)
	if len(raw.Topics) == 0 {
		probs = append(probs, &Problem{Field: "topics", Message: "at least one topic is required"})
	}
	out := &Catalog{Regions: raw.Regions, Channels: raw.Channels}
	for i, entry := range raw.Topics {
		var entryProbs []*Problem
		entryProbs = append(entryProbs, checkFields(entry)...)
		names, errs := expand(entry.Name, raw.Regions, raw.Channels)
		entryProbs = append(entryProbs, errs...)
		for _, name := range names {
			t := entry.clone()
			t.Name = name
			entryProbs = append(entryProbs, checkName(name)...)
			out.Topics = append(out.Topics, t)
		}
		for _, p := range entryProbs {
			if p.Topic == "" { // a nameless entry: say which one
				p.Topic = fmt.Sprintf("topics[%d]", i)
			}
		}
		probs = append(probs, entryProbs...)
	}
	probs = append(probs, checkDuplicates(out.Topics)...)
	if len(probs) > 0 {
		return nil, joinProblems(probs)
	}
	return out, nil
}

// expand returns the names a catalogue entry stands for.
func expand(name string, regions, channels []string) ([]string, []*Problem) {
	if !strings.Contains(name, "{") && !strings.Contains(name, "}") {
		return []string{name}, nil
	}
	rest := strings.NewReplacer(placeholderRegion, "", placeholderChannel, "").Replace(name)
	if strings.ContainsAny(rest, "{}") {
		return nil, []*Problem{{Topic: name, Field: "name", Message: "has an unknown placeholder; only " + placeholderRegion + " and " + placeholderChannel + " are expanded"}}
	}
	names := []string{name}
	for _, ph := range []struct {
		placeholder string
		values      []string
	}{{placeholderRegion, regions}, {placeholderChannel, channels}} {
		if !strings.Contains(name, ph.placeholder) {
			continue
		}
		if len(ph.values) == 0 {
			return nil, []*Problem{{Topic: name, Field: "name", Message: "uses " + ph.placeholder + " but the catalogue lists none"}}
		}
		var next []string
		for _, n := range names {
			for _, v := range ph.values {
				next = append(next, strings.ReplaceAll(n, ph.placeholder, v))
			}
		}
		names = next
	}
	return names, nil
}

// Validate checks an expanded catalogue (one built in code, or changed after
// Load) and returns every problem joined, each naming the topic and field.
func (c *Catalog) Validate() error {
	probs := checkLists(c.Regions, c.Channels)
	for _, t := range c.Topics {
		probs = append(probs, checkName(t.Name)...)
		probs = append(probs, checkFields(t)...)
	}
	probs = append(probs, checkDuplicates(c.Topics)...)
	if len(probs) == 0 {
		return nil
	}
	return joinProblems(probs)
}

// Names lists the topic names in catalogue order.
func (c *Catalog) Names() []string {
	names := make([]string, len(c.Topics))
	for i, t := range c.Topics {
		names[i] = t.Name
	}
	return names
}

// Lookup returns the topic with the given name.
func (c *Catalog) Lookup(name string) (Topic, bool) {
	for _, t := range c.Topics {
		if t.Name == name {
			return t.clone(), true
		}
	}
	return Topic{}, false
}

// ForBrokers returns a copy of the catalogue fitted to a cluster of n
// brokers: replication factor and min.insync.replicas are capped at n. The
// local stack (3 kfake brokers) and single-broker test clusters use it; a
// production cluster is expected to have the brokers the catalogue asks for.
func (c *Catalog) ForBrokers(n int) *Catalog {
	n = max(n, 1)
	out := c.clone()
	for i := range out.Topics {
		t := &out.Topics[i]
		if int(t.ReplicationFactor) > n {
			t.ReplicationFactor = int16(min(n, 1<<15-1))
		}
		if v, ok := t.Configs[ConfigMinInsyncReplicas]; ok {
			if m, err := strconv.Atoi(v); err == nil && m > int(t.ReplicationFactor) {
				t.Configs[ConfigMinInsyncReplicas] = strconv.Itoa(int(t.ReplicationFactor))
			}
		}
	}
	return out
}

func (c *Catalog) clone() *Catalog {
	out := &Catalog{
		Regions:  slices.Clone(c.Regions),
		Channels: slices.Clone(c.Channels),
		Topics:   make([]Topic, len(c.Topics)),
	}
	for i, t := range c.Topics {
		out.Topics[i] = t.clone()
	}
	return out
}

func (t Topic) clone() Topic {
	t.Configs = maps.Clone(t.Configs)
	return t
}
