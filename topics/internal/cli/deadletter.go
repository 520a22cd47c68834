package cli

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/IBM/sarama"

	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

const deadLetterUsage = `Usage: topics deadletter <command> [flags]

Inspects the dead-letter topic and redrives its records to their source topic.

Commands:
  list                    one line per dead letter, oldest first
  show <partition>:<offset>
                          one dead letter with all its headers, reason and value
  redrive                 write selected dead letters back to their source topic,
                          once each, counting redrives in the dlq-redrives header

Run "topics deadletter <command> --help" for a command's flags.
`

// runDeadLetter dispatches `topics deadletter <command>`.
func runDeadLetter(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, deadLetterUsage)
		return ExitUsage, nil
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, deadLetterUsage)
		return ExitOK, nil
	case "list":
		return runDeadLetterList(ctx, args[1:], stdout, stderr)
	case "show":
		return runDeadLetterShow(ctx, args[1:], stdout, stderr)
	case "redrive":
		return runDeadLetterRedrive(ctx, args[1:], stdout, stderr)
	}
	return 0, usageError{fmt.Errorf("unknown command %q: want list, show or redrive", args[0])}
}

// deadLetterFlags are the settings every deadletter command takes.
type deadLetterFlags struct {
	*flags
	topic string
}

func newDeadLetterFlags(name, synopsis string, stderr io.Writer) *deadLetterFlags {
	f := &deadLetterFlags{flags: &flags{set: config.NewSet("topics deadletter " + name)}}
	fs := f.set.FS
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: topics deadletter %s\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.brokers, "brokers", "", "Kafka bootstrap brokers, comma-separated (overrides KAFKA_BROKERS and --kafka-brokers)")
	f.kafka.Bind(f.set)
	f.set.String(&f.topic, "dead-letter-topic", "DEAD_LETTER_TOPIC", catalog.DeadLetter, "the dead-letter topic")
	return f
}

// parseArgs parses flags and positional arguments in any order (the flag
// package stops at the first positional one) and wants exactly n positional.
func (f *deadLetterFlags) parseArgs(args []string, n int) ([]string, error) {
	var pos []string
	for {
		if err := f.set.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err}
		}
		rest := f.set.FS.Args()
		if len(rest) == 0 {
			break
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
	if len(pos) != n {
		if n == 0 {
			return nil, usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(pos, " "))}
		}
		return nil, usageError{fmt.Errorf("want %d argument(s), got %d: %s", n, len(pos), strings.Join(pos, " "))}
	}
	if f.topic == "" {
		return nil, usageError{errors.New("--dead-letter-topic: must not be empty")}
	}
	return pos, nil
}

// kafkaConfig is the Kafka configuration the flags and environment name.
func (f *deadLetterFlags) kafkaConfig() (kafka.Config, error) {
	cfg := f.kafka
	if f.brokers != "" {
		cfg.Brokers = config.SplitList(f.brokers)
	}
	cfg.ClientID = "topics"
	if err := cfg.Validate(); err != nil {
		return cfg, usageError{err}
	}
	return cfg, nil
}

// deadLetterFilter selects dead letters; the zero value selects all.
type deadLetterFilter struct {
	sourceTopic  string
	reason       string
	since, until time.Time
	limit        int
}

// filterFlags holds the filter flags as given, parsed by filter.
type filterFlags struct {
	sourceTopic, reason, since, until string
	limit                             int
}

func (f *deadLetterFlags) addFilterFlags() *filterFlags {
	ff := &filterFlags{}
	fs := f.set.FS
	fs.StringVar(&ff.sourceTopic, "source-topic", "", "only dead letters from this topic")
	fs.StringVar(&ff.reason, "reason", "", "only dead letters whose reason contains this text (any case)")
	fs.StringVar(&ff.since, "since", "", "only dead letters written at or after this time: RFC 3339 (2026-11-24T08:00:00Z) or a duration before now (90m)")
	fs.StringVar(&ff.until, "until", "", "only dead letters written before this time (same forms as --since)")
	fs.IntVar(&ff.limit, "limit", 0, "at most this many dead letters, the oldest first (0: all)")
	return ff
}

// filter checks and converts the flags; now anchors the durations.
func (ff *filterFlags) filter(now time.Time) (deadLetterFilter, error) {
	df := deadLetterFilter{sourceTopic: ff.sourceTopic, reason: ff.reason, limit: ff.limit}
	var p config.Problems
	var err error
	if df.since, err = parseWhen(ff.since, now); err != nil {
		p.Addf("--since", "%v", err)
	}
	if df.until, err = parseWhen(ff.until, now); err != nil {
		p.Addf("--until", "%v", err)
	}
	if !df.since.IsZero() && !df.until.IsZero() && !df.since.Before(df.until) {
		p.Addf("--until", "%s is not after --since %s", df.until.Format(time.RFC3339), df.since.Format(time.RFC3339))
	}
	config.NotNegative(&p, "--limit", df.limit)
	if err := p.Err(); err != nil {
		return df, usageError{err}
	}
	return df, nil
}

// selects reports whether any filter is set (the limit aside).
func (df deadLetterFilter) selects() bool {
	return df.sourceTopic != "" || df.reason != "" || !df.since.IsZero() || !df.until.IsZero()
}

func (df deadLetterFilter) match(d *deadLetter) bool {
	switch {
	case df.sourceTopic != "" && d.SourceTopic != df.sourceTopic:
		return false
	case df.reason != "" && !strings.Contains(strings.ToLower(d.Reason), strings.ToLower(df.reason)):
		return false
	case !df.since.IsZero() && d.Time.Before(df.since):
		return false
	case !df.until.IsZero() && !d.Time.Before(df.until):
		return false
	}
	return true
}

// parseWhen reads an RFC 3339 time or a duration before now; "" is the zero time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time (2026-11-24T08:00:00Z) nor a positive duration before now (90m)", s)
}

// position is a record's place in a topic, written <partition>:<offset>.
type position struct {
	Partition int32
	Offset    int64
}

func (p position) String() string { return fmt.Sprintf("%d:%d", p.Partition, p.Offset) }

func parsePosition(s string) (position, error) {
	ps, offs, ok := strings.Cut(s, ":")
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(offs, 10, 64)
	if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
		return position{}, fmt.Errorf("%q is not <partition>:<offset> (e.g. 1:42)", s)
	}
	return position{int32(p), o}, nil
}

// deadLetter is one record of the dead-letter topic with what its headers say.
type deadLetter struct {
	At     position
	Time   time.Time
	Key    []byte // nil: a null key
	Value  []byte
	Header []*sarama.RecordHeader

	SourceTopic string
	Source      position
	Group       string
	Reason      string
	Redrives    int
	// Problem says why it cannot be redriven: a dlq- header missing or
	// malformed (a record some other tool wrote to the topic).
	Problem string
}

func parseDeadLetter(m *sarama.ConsumerMessage) *deadLetter {
	h := kafka.ConsumerHeaders(m)
	d := &deadLetter{
		At: position{m.Partition, m.Offset}, Time: m.Timestamp, Key: m.Key, Value: m.Value, Header: m.Headers,
		SourceTopic: h.Get(events.HeaderDLQTopic), Group: h.Get(events.HeaderDLQGroup), Reason: h.Get(events.HeaderDLQReason),
	}
	var problems []string
	if d.SourceTopic == "" {
		problems = append(problems, "no "+events.HeaderDLQTopic+" header")
	}
	src, err := parsePosition(h.Get(events.HeaderDLQPartition) + ":" + h.Get(events.HeaderDLQOffset))
	if err != nil {
		problems = append(problems, fmt.Sprintf("%s %q and %s %q are not a partition and an offset",
			events.HeaderDLQPartition, h.Get(events.HeaderDLQPartition), events.HeaderDLQOffset, h.Get(events.HeaderDLQOffset)))
	}
	d.Source = src
	if v, ok := h.Lookup(events.HeaderRedrives); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			problems = append(problems, fmt.Sprintf("%s %q is not a count", events.HeaderRedrives, v))
		}
		d.Redrives = n
	}
	d.Problem = strings.Join(problems, "; ")
	return d
}

// deadLetterJSON is one line of `list --json`.
type deadLetterJSON struct {
	Partition       int32     `json:"partition"`
	Offset          int64     `json:"offset"`
	Time            time.Time `json:"time"`
	SourceTopic     string    `json:"source_topic"`
	SourcePartition int32     `json:"source_partition"`
	SourceOffset    int64     `json:"source_offset"`
	Group           string    `json:"group"`
	Reason          string    `json:"reason"`
	Redrives        int       `json:"redrives"`
	Key             *string   `json:"key"` // null for a null key
	Problem         string    `json:"problem,omitempty"`
}

func (d *deadLetter) json() deadLetterJSON {
	j := deadLetterJSON{
		Partition: d.At.Partition, Offset: d.At.Offset, Time: d.Time.UTC(),
		SourceTopic: d.SourceTopic, SourcePartition: d.Source.Partition, SourceOffset: d.Source.Offset,
		Group: d.Group, Reason: d.Reason, Redrives: d.Redrives, Problem: d.Problem,
	}
	if d.Key != nil {
		k := string(d.Key)
		j.Key = &k
	}
	return j
}

const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// printable shows a key or reason on one line: raw when it is plain text,
// quoted otherwise, "-" for null, cut to max runes.
func printable(b []byte, max int) string {
	if b == nil {
		return "-"
	}
	s := string(b)
	if !utf8.ValidString(s) || strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) || unicode.IsSpace(r) }) >= 0 || s == "" {
		s = strconv.Quote(s)
	}
	return cut(s, max)
}

func cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max-1]) + "…"
}

func shortReason(r string) string {
	first, _, _ := strings.Cut(r, "\n")
	return cut(first, 80)
}

func runDeadLetterList(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newDeadLetterFlags("list [flags]", "Lists dead letters, the oldest first: where each is (partition:offset), when it was\nwritten, its source topic and position, redrives so far, key and reason.", stderr)
	ff := f.addFilterFlags()
	asJSON := f.set.FS.Bool("json", false, "one JSON object per line, with the full reason and the group")
	if _, err := f.parseArgs(args, 0); err != nil {
		return 0, err
	}
	df, err := ff.filter(time.Now())
	if err != nil {
		return 0, err
	}
	r, err := f.reader()
	if err != nil {
		return 0, err
	}
	defer r.close()
	dls, err := r.deadLetters(ctx, f.topic, df)
	if err != nil {
		return 0, err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, d := range dls {
			if err := enc.Encode(d.json()); err != nil {
				return 0, err
			}
		}
		return ExitOK, nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RECORD\tTIME\tSOURCE_TOPIC\tSOURCE\tREDRIVES\tKEY\tREASON")
	for _, d := range dls {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", d.At, d.Time.UTC().Format(timeLayout), d.SourceTopic, d.Source, d.Redrives, printable(d.Key, 40), shortReason(d.Reason))
	}
	return ExitOK, tw.Flush()
}

func runDeadLetterShow(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newDeadLetterFlags("show [flags] <partition>:<offset>", "Shows one dead letter: where it came from, why, every header and the value\n(indented when it is JSON).", stderr)
	pos, err := f.parseArgs(args, 1)
	if err != nil {
		return 0, err
	}
	at, err := parsePosition(pos[0])
	if err != nil {
		return 0, usageError{err}
	}
	r, err := f.reader()
	if err != nil {
		return 0, err
	}
	defer r.close()
	m, err := r.record(ctx, f.topic, at)
	if err != nil {
		return 0, err
	}
	d := parseDeadLetter(m)
	var b strings.Builder
	fmt.Fprintf(&b, "record:    %s %s\n", f.topic, d.At)
	fmt.Fprintf(&b, "time:      %s\n", d.Time.UTC().Format(timeLayout))
	fmt.Fprintf(&b, "source:    %s %s\n", d.SourceTopic, d.Source)
	fmt.Fprintf(&b, "group:     %s\n", d.Group)
	fmt.Fprintf(&b, "reason:    %s\n", d.Reason)
	fmt.Fprintf(&b, "redrives:  %d\n", d.Redrives)
	if d.Problem != "" {
		fmt.Fprintf(&b, "problem:   %s (it cannot be redriven)\n", d.Problem)
	}
	fmt.Fprintf(&b, "key:       %s\n", printable(d.Key, 1<<20))
	fmt.Fprintf(&b, "headers:\n")
	for _, h := range d.Header {
		if h != nil {
			fmt.Fprintf(&b, "  %s: %s\n", h.Key, h.Value)
		}
	}
	var pretty bytes.Buffer
	switch {
	case d.Value == nil:
		b.WriteString("value: null\n")
	case json.Valid(d.Value) && json.Indent(&pretty, d.Value, "", "  ") == nil:
		fmt.Fprintf(&b, "value (JSON, %d bytes):\n%s\n", len(d.Value), pretty.String())
	case utf8.Valid(d.Value):
		fmt.Fprintf(&b, "value (text, %d bytes, not JSON):\n%s\n", len(d.Value), d.Value)
	default:
		fmt.Fprintf(&b, "value (%d bytes, binary):\n%s", len(d.Value), hex.Dump(d.Value))
	}
	_, err = io.WriteString(stdout, b.String())
	return ExitOK, err
}

func runDeadLetterRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newDeadLetterFlags("redrive (--select P:O[,P:O...] | filters | --all) [flags]",
		"Writes the selected dead letters' key, value and headers (less the dlq-source-*,\n"+
			"dlq-group and dlq-reason headers) back to their source topic and partition, with\n"+
			"dlq-redrives counting the redrives and dlq-redrive-of naming the source record.\n"+
			"A dead letter whose source record already has a redriven copy is skipped, so\n"+
			"running it twice writes one copy per record. Run one redrive at a time.\n"+
			"A dead letter redriven --max-redrives times already is refused (exit 1).", stderr)
	ff := f.addFilterFlags()
	sel := f.set.FS.String("select", "", "the dead letters to redrive, by position: P:O[,P:O...] (not with the filters)")
	all := f.set.FS.Bool("all", false, "redrive every dead letter (with no --select or filter)")
	dryRun := f.set.FS.Bool("dry-run", false, "show what would be redriven, write nothing")
	maxRedrives := f.set.FS.Int("max-redrives", 3, "refuse a dead letter whose record was redriven this many times already")
	if _, err := f.parseArgs(args, 0); err != nil {
		return 0, err
	}
	df, err := ff.filter(time.Now())
	if err != nil {
		return 0, err
	}
	var positions []position
	for _, s := range config.SplitList(*sel) {
		p, err := parsePosition(s)
		if err != nil {
			return 0, usageError{fmt.Errorf("--select: %w", err)}
		}
		if !slices.Contains(positions, p) {
			positions = append(positions, p)
		}
	}
	switch {
	case *maxRedrives < 1:
		return 0, usageError{fmt.Errorf("--max-redrives: must be at least 1, got %d", *maxRedrives)}
	case *sel != "" && (df.selects() || df.limit > 0 || *all):
		return 0, usageError{errors.New("--select names the records itself: not with --source-topic, --reason, --since, --until, --limit or --all")}
	case *sel == "" && !df.selects() && !*all:
		return 0, usageError{errors.New("name the dead letters: --select P:O[,...], a filter (--source-topic, --reason, --since, --until), or --all")}
	case *all && df.selects():
		return 0, usageError{errors.New("--all is not with the filters")}
	}
	r, err := f.reader()
	if err != nil {
		return 0, err
	}
	defer r.close()
	var dls []*deadLetter
	if positions != nil {
		for _, p := range positions {
			m, err := r.record(ctx, f.topic, p)
			if err != nil {
				return 0, err
			}
			dls = append(dls, parseDeadLetter(m))
		}
	} else if dls, err = r.deadLetters(ctx, f.topic, df); err != nil {
		return 0, err
	}
	plan, err := r.planRedrive(ctx, f.topic, dls, *maxRedrives, time.Now())
	if err != nil {
		return 0, err
	}
	if !*dryRun {
		if err := r.redrive(plan); err != nil {
			return 0, err
		}
	}
	return plan.report(f.topic, *dryRun, *maxRedrives, stdout, stderr)
}
