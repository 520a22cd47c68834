package catalog

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"backinstock/topics/events"
)

// Problem is one thing wrong with the catalogue. Topic is the topic (or the
// templated entry) it concerns, empty for catalogue-wide fields.
type Problem struct {
	Topic   string
	Field   string
	Message string
}

func (p *Problem) Error() string {
	if p.Topic == "" {
		return p.Field + ": " + p.Message
	}
	return fmt.Sprintf("topic %q: %s: %s", p.Topic, p.Field, p.Message)
}

func joinProblems(probs []*Problem) error {
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p
	}
	return errors.Join(errs...)
}

// MaxNameLen is the longest topic name: Kafka refuses 249 characters and
// more.
const MaxNameLen = 248

// NamingRule is the topic naming rule, as the error messages quote it.
const NamingRule = "<domain>[.<event>][.<region>.<channel>].v<N>"

// ValidName reports whether name follows the naming rule.
func ValidName(name string) bool { return len(checkName(name)) == 0 }

// CheckName returns a *Problem saying how name breaks the naming rule, or
// nil.
func CheckName(name string) error {
	if probs := checkName(name); len(probs) > 0 {
		return probs[0]
	}
	return nil
}

// checkName checks the naming rule: lowercase parts of letters and digits
// joined by single '-', separated by '.', ending in a version .v<N>; before
// the version a domain, an optional event, and optionally a region and a
// known channel. The design writes the rule as
// <domain>.<event>[.<region>.<channel>].v<N>, but its own topics
// notify.<region>.<channel>.v1 and deadletter.v1 have no event part, so the
// event is optional here. Underscores are refused even though Kafka allows
// them: Kafka maps '.' and '_' to the same metric name.
func checkName(name string) []*Problem {
	bad := func(msg string) []*Problem { return []*Problem{{Topic: name, Field: "name", Message: msg}} }
	if name == "" {
		return bad("required")
	}
	if len(name) > MaxNameLen {
		return bad(fmt.Sprintf("must be at most %d characters (Kafka's limit), got %d", MaxNameLen, len(name)))
	}
	if strings.ToLower(name) != name {
		return bad("must be lowercase")
	}
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-':
		case r == '_':
			return bad("must not contain '_': Kafka maps '.' and '_' to the same metric name; use '-'")
		default:
			return bad(fmt.Sprintf("contains %q: Kafka allows only letters, digits, '.', '_' and '-'", r))
		}
	}
	parts := strings.Split(name, ".")
	version := parts[len(parts)-1]
	if len(parts) < 2 || !validVersion(version) {
		return bad("must end with a version part .v<N>, following " + NamingRule)
	}
	parts = parts[:len(parts)-1]
	for _, p := range parts {
		if !validPart(p) {
			return bad(fmt.Sprintf("part %q must be lowercase letters and digits joined by single '-', following %s", p, NamingRule))
		}
	}
	switch len(parts) {
	case 1, 2: // <domain>[.<event>]
	case 3, 4: // <domain>[.<event>].<region>.<channel>
		if ch := parts[len(parts)-1]; !events.ValidChannel(ch) {
			return bad(fmt.Sprintf("part %q is where %s has the channel, and must be one of %s", ch, NamingRule, strings.Join(events.ChannelNames(), ", ")))
		}
	default:
		return bad(fmt.Sprintf("has %d parts before the version, at most 4 fit %s", len(parts), NamingRule))
	}
	return nil
}

// validPart reports whether p matches [a-z0-9]+(-[a-z0-9]+)*.
func validPart(p string) bool {
	if p == "" || p[0] == '-' || p[len(p)-1] == '-' || strings.Contains(p, "--") {
		return false
	}
	return strings.Trim(p, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

func validVersion(s string) bool {
	if len(s) < 2 || s[0] != 'v' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// checkLists checks the regions and channels a catalogue expands over.
func checkLists(regions, channels []string) []*Problem {
	var probs []*Problem
	seen := map[string]bool{}
	for i, r := range regions {
		field := fmt.Sprintf("regions[%d]", i)
		switch {
		case !events.ValidRegion(r):
			probs = append(probs, &Problem{Field: field, Message: fmt.Sprintf("%q must match %s", r, events.RegionPattern)})
		case seen[r]:
			probs = append(probs, &Problem{Field: field, Message: fmt.Sprintf("duplicate region %q", r)})
		}
		seen[r] = true
	}
	clear(seen)
	for i, c := range channels {
		field := fmt.Sprintf("channels[%d]", i)
		switch {
		case !events.ValidChannel(c):
			probs = append(probs, &Problem{Field: field, Message: fmt.Sprintf("%q is not a channel the services know (%s)", c, strings.Join(events.ChannelNames(), ", "))})
		case seen[c]:
			probs = append(probs, &Problem{Field: field, Message: fmt.Sprintf("duplicate channel %q", c)})
		}
		seen[c] = true
	}
	return probs
}

// MaxPartitions is a sanity bound: more partitions than this on one topic is
// a typo, not a plan.
const MaxPartitions = 10000

// checkFields checks everything but the name of one entry (templated or
// not), reporting under the entry's name.
func checkFields(t Topic) []*Problem {
	var probs []*Problem
	add := func(field, msg string) { probs = append(probs, &Problem{Topic: t.Name, Field: field, Message: msg}) }
	if strings.TrimSpace(t.Description) == "" {
		add("description", "required: say what the topic carries and why it is configured so")
	}
	if t.Partitions < 1 || t.Partitions > MaxPartitions {
		add("partitions", fmt.Sprintf("must be between 1 and %d, got %d", MaxPartitions, t.Partitions))
	}
	if t.ReplicationFactor < 1 {
		add("replication_factor", fmt.Sprintf("must be at least 1, got %d", t.ReplicationFactor))
	}
	if strings.TrimSpace(t.Key) == "" {
		add("key", "required: describe the record key, e.g. sku")
	}
	if t.Value != "" && !events.KnownSchema(t.Value) {
		add("value", fmt.Sprintf("unknown schema %q; want one of %s, or empty for raw values", t.Value, strings.Join(events.SchemaNames(), ", ")))
	}
	for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
		if msg := checkConfig(k, t.Configs[k], t.ReplicationFactor); msg != "" {
			add("configs."+k, msg)
		}
	}
	return probs
}

func checkDuplicates(ts []Topic) []*Problem {
	var probs []*Problem
	seen := map[string]bool{}
	for _, t := range ts {
		if seen[t.Name] {
			probs = append(probs, &Problem{Topic: t.Name, Field: "name", Message: "defined more than once"})
		}
		seen[t.Name] = true
	}
	return probs
}

// Topic config names the catalogue may set.
const (
	ConfigCleanupPolicy           = "cleanup.policy"
	ConfigCompressionType         = "compression.type"
	ConfigDeleteRetentionMS       = "delete.retention.ms"
	ConfigMaxCompactionLagMS      = "max.compaction.lag.ms"
	ConfigMaxMessageBytes         = "max.message.bytes"
	ConfigMessageTimestampType    = "message.timestamp.type"
	ConfigMinCleanableDirtyRatio  = "min.cleanable.dirty.ratio"
	ConfigMinCompactionLagMS      = "min.compaction.lag.ms"
	ConfigMinInsyncReplicas       = "min.insync.replicas"
	ConfigRetentionBytes          = "retention.bytes"
	ConfigRetentionMS             = "retention.ms"
	ConfigSegmentBytes            = "segment.bytes"
	ConfigSegmentMS               = "segment.ms"
	ConfigUncleanLeaderElection   = "unclean.leader.election.enable"
	ConfigMessageTimestampAfterMS = "message.timestamp.after.max.ms"
)

// KnownConfigs lists the topic configs the catalogue may set: the ones whose
// values it can check. Anything else is refused so a typo ("retention.msec")
// fails validation instead of failing on the broker.
func KnownConfigs() []string {
	return []string{
		ConfigCleanupPolicy, ConfigCompressionType, ConfigDeleteRetentionMS,
		ConfigMaxCompactionLagMS, ConfigMaxMessageBytes, ConfigMessageTimestampAfterMS,
		ConfigMessageTimestampType, ConfigMinCleanableDirtyRatio, ConfigMinCompactionLagMS,
		ConfigMinInsyncReplicas, ConfigRetentionBytes, ConfigRetentionMS,
		ConfigSegmentBytes, ConfigSegmentMS, ConfigUncleanLeaderElection,
	}
}

// checkConfig returns what is wrong with one config value, or "".
func checkConfig(key, value string, rf int16) string {
	oneOf := func(allowed ...string) string {
		if slices.Contains(allowed, value) {
			return ""
		}
		return fmt.Sprintf("must be one of %s, got %q", strings.Join(allowed, ", "), value)
	}
	atLeast := func(lo int64, why string) string {
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			return fmt.Sprintf("must be an integer, got %q", value)
		}
		if n < lo {
			return fmt.Sprintf("must be at least %d%s, got %d", lo, why, n)
		}
		return ""
	}
	switch key {
	case ConfigCleanupPolicy:
		return oneOf("delete", "compact", "compact,delete")
	case ConfigCompressionType:
		return oneOf("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")
	case ConfigMessageTimestampType:
		return oneOf("CreateTime", "LogAppendTime")
	case ConfigUncleanLeaderElection:
		return oneOf("true", "false")
	case ConfigRetentionMS:
		return atLeast(-1, " (-1: keep forever)")
	case ConfigRetentionBytes:
		return atLeast(-1, " (-1: no size limit)")
	case ConfigDeleteRetentionMS, ConfigMinCompactionLagMS, ConfigMaxMessageBytes, ConfigMessageTimestampAfterMS:
		return atLeast(0, "")
	case ConfigMaxCompactionLagMS, ConfigSegmentMS:
		return atLeast(1, "")
	case ConfigSegmentBytes:
		return atLeast(1<<20, " (Kafka 4 refuses segments under 1 MiB)")
	case ConfigMinCleanableDirtyRatio:
		f, err := strconv.ParseFloat(value, 64)
		if err != nil || f < 0 || f > 1 {
			return fmt.Sprintf("must be a number between 0 and 1, got %q", value)
		}
		return ""
	case ConfigMinInsyncReplicas:
		if msg := atLeast(1, ""); msg != "" {
			return msg
		}
		if n, _ := strconv.ParseInt(value, 10, 64); rf >= 1 && n > int64(rf) {
			return fmt.Sprintf("must not exceed replication_factor %d, got %d: acks=all producers could never write", rf, n)
		}
		return ""
	}
	return fmt.Sprintf("unknown config; the catalogue may set %s", strings.Join(KnownConfigs(), ", "))
}
