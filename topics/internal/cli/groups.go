package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/IBM/sarama"

	"backinstock/shared/config"
	"backinstock/shared/kafka"
)

const groupsUsage = `Usage: topics groups <command> [flags]

Consumer groups: where each one stands and how far behind it is, and moving
a stopped group's committed offsets.

Commands:
  list               every group with, per partition, its committed offset, the
                     partition's end (high watermark) and the lag
  describe <group>   one group: state, members and their partitions, and per
                     partition the committed offset, end, lag and member
  reset <group> --topic T (--to-earliest | --to-latest | --to-datetime T |
                --to-offset P:O[,P:O...]) [--dry-run]
                     move a stopped group's committed offsets on one topic;
                     --dry-run prints the plan and changes nothing

Run "topics groups <command> --help" for a command's flags.
`

// runGroups dispatches topics groups <command>.
func runGroups(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, groupsUsage)
		return 0, usageError{errors.New("a command is required: list, describe or reset")}
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, groupsUsage)
		return 0, flag.ErrHelp
	case "list":
		return runGroupsList(ctx, rest, stdout, stderr)
	case "describe":
		return runGroupsDescribe(ctx, rest, stdout, stderr)
	case "reset":
		return runGroupsReset(ctx, rest, stdout, stderr)
	}
	fmt.Fprint(stderr, groupsUsage)
	return 0, usageError{fmt.Errorf("unknown command %q", cmd)}
}

// newGroupFlags is newFlags for the groups commands: the Kafka settings,
// no catalogue. usage is the synopsis line after "topics groups".
func newGroupFlags(usage, synopsis string, stderr io.Writer) *flags {
	f := &flags{set: config.NewSet("topics groups")}
	fs := f.set.FS
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: topics groups %s\n\n%s\n\nFlags:\n", usage, synopsis)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.brokers, "brokers", "", "Kafka bootstrap brokers, comma-separated (overrides KAFKA_BROKERS and --kafka-brokers)")
	f.kafka.Bind(f.set)
	return f
}

// parseGroup parses args that name one group, before or after the flags.
func (f *flags) parseGroup(args []string) (string, error) {
	var group string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		group, args = args[0], args[1:]
	}
	if err := f.set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", usageError{err}
	}
	rest := f.set.FS.Args()
	if group == "" && len(rest) > 0 {
		group, rest = rest[0], rest[1:]
	}
	if len(rest) > 0 {
		return "", usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(rest, " "))}
	}
	if group == "" {
		return "", usageError{errors.New("a group name is required")}
	}
	return group, nil
}

// connect opens a client and an admin over it; closing the admin closes both.
func (f *flags) connect() (sarama.Client, sarama.ClusterAdmin, error) {
	cfg := f.kafka
	if f.brokers != "" {
		cfg.Brokers = config.SplitList(f.brokers)
	}
	cfg.ClientID = "topics"
	if err := cfg.Validate(); err != nil {
		return nil, nil, usageError{err}
	}
	cl, err := kafka.NewClient(cfg)
	if err != nil {
		return nil, nil, err
	}
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		_ = cl.Close()
		return nil, nil, fmt.Errorf("kafka admin: %w", err)
	}
	return cl, adm, nil
}

// groupView is a group as list and describe show it (and --json writes it).
type groupView struct {
	Group      string          `json:"group"`
	State      string          `json:"state"`
	Protocol   string          `json:"protocol,omitempty"`
	Members    []memberView    `json:"members"`
	Partitions []partitionView `json:"partitions"`
}

type memberView struct {
	ID         string             `json:"id"`
	InstanceID string             `json:"instance_id,omitempty"`
	ClientID   string             `json:"client_id"`
	Host       string             `json:"host"`
	Assigned   map[string][]int32 `json:"assigned"`
}

// partitionView is one partition's position: Committed and Lag are null
// where the group has committed nothing.
type partitionView struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Committed *int64 `json:"committed"`
	End       int64  `json:"end"`
	Lag       *int64 `json:"lag"`
	Member    string `json:"member,omitempty"`
}

// groupStateDead is the state Kafka reports for a group that does not exist.
const groupStateDead = "Dead"

// describeGroups reads the named groups: members and their assignments,
// committed offsets, the partitions' ends. Groups that do not exist come
// back with state Dead and nothing else.
func describeGroups(ctx context.Context, cl sarama.Client, adm sarama.ClusterAdmin, names []string) ([]groupView, error) {
	if len(names) == 0 {
		return nil, nil
	}
	descs, err := adm.DescribeConsumerGroups(names)
	if err != nil {
		return nil, fmt.Errorf("describe groups: %w", err)
	}
	ends := kafka.Offsets{}
	end := func(topic string, p int32) (int64, error) {
		if off, ok := ends.Get(topic, p); ok {
			return off, nil
		}
		off, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, fmt.Errorf("end of %s/%d: %w", topic, p, err)
		}
		ends.Set(topic, p, off)
		return off, nil
	}
	var out []groupView
	for _, d := range descs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if !errors.Is(d.Err, sarama.ErrNoError) && !errors.Is(d.Err, sarama.ErrGroupIDNotFound) {
			return nil, fmt.Errorf("describe group %s: %w", d.GroupId, d.Err)
		}
		g := groupView{Group: d.GroupId, State: d.State, Members: []memberView{}, Partitions: []partitionView{}}
		if d.State == "" || errors.Is(d.Err, sarama.ErrGroupIDNotFound) {
			g.State = groupStateDead
		}
		if d.Protocol != "" {
			g.Protocol = d.ProtocolType + "/" + d.Protocol
		}
		owner := map[string]map[int32]string{}
		for _, id := range slices.Sorted(maps.Keys(d.Members)) {
			m := d.Members[id]
			mv := memberView{ID: id, ClientID: m.ClientId, Host: m.ClientHost, Assigned: map[string][]int32{}}
			if m.GroupInstanceId != nil {
				mv.InstanceID = *m.GroupInstanceId
			}
			if d.ProtocolType == "consumer" && len(m.MemberAssignment) > 0 {
				a, err := m.GetMemberAssignment()
				if err != nil {
					return nil, fmt.Errorf("group %s member %s: assignment: %w", d.GroupId, id, err)
				}
				for topic, parts := range a.Topics {
					mv.Assigned[topic] = slices.Sorted(slices.Values(parts))
					for _, p := range parts {
						if owner[topic] == nil {
							owner[topic] = map[int32]string{}
						}
						owner[topic][p] = id
					}
				}
			}
			g.Members = append(g.Members, mv)
		}
		if g.State == groupStateDead {
			out = append(out, g)
			continue
		}
		committed, err := kafka.Committed(adm, d.GroupId, nil)
		if err != nil {
			return nil, err
		}
		// A partition is shown when the group committed on it or a member holds it.
		seen := kafka.Offsets{}
		for topic, parts := range committed {
			for p := range parts {
				seen.Set(topic, p, 0)
			}
		}
		for topic, parts := range owner {
			for p := range parts {
				seen.Set(topic, p, 0)
			}
		}
		for _, topic := range slices.Sorted(maps.Keys(seen)) {
			for _, p := range slices.Sorted(maps.Keys(seen[topic])) {
				e, err := end(topic, p)
				if err != nil {
					return nil, err
				}
				pv := partitionView{Topic: topic, Partition: p, End: e, Member: owner[topic][p]}
				if c, ok := committed.Get(topic, p); ok {
					lag := max(0, e-c)
					pv.Committed, pv.Lag = &c, &lag
				}
				g.Partitions = append(g.Partitions, pv)
			}
		}
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b groupView) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

func dash(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runGroupsList(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newGroupFlags("list [flags]", "Lists every consumer group with, per partition, its committed offset, the partition's\nend (high watermark) and the lag (end - committed; - where nothing is committed).", stderr)
	asJSON := f.set.FS.Bool("json", false, "write the groups as JSON")
	if err := f.parse(args); err != nil {
		return 0, err
	}
	cl, adm, err := f.connect()
	if err != nil {
		return 0, err
	}
	defer adm.Close()
	all, err := adm.ListConsumerGroups()
	if err != nil {
		return 0, fmt.Errorf("list groups: %w", err)
	}
	groups, err := describeGroups(ctx, cl, adm, slices.Sorted(maps.Keys(all)))
	if err != nil {
		return 0, err
	}
	groups = slices.DeleteFunc(groups, func(g groupView) bool { return g.State == groupStateDead })
	if *asJSON {
		if groups == nil {
			groups = []groupView{}
		}
		return ExitOK, writeJSON(stdout, groups)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tSTATE\tMEMBERS\tTOPIC\tPARTITION\tCOMMITTED\tEND\tLAG")
	for _, g := range groups {
		if len(g.Partitions) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\t-\t-\n", g.Group, g.State, len(g.Members))
		}
		for _, p := range g.Partitions {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\t%d\t%s\n", g.Group, g.State, len(g.Members), p.Topic, p.Partition, dash(p.Committed), p.End, dash(p.Lag))
		}
	}
	return ExitOK, tw.Flush()
}

func runGroupsDescribe(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newGroupFlags("describe <group> [flags]", "Shows one consumer group: its state, its members and the partitions each holds, and per\npartition the committed offset, the end (high watermark), the lag and the member.", stderr)
	asJSON := f.set.FS.Bool("json", false, "write the group as JSON")
	group, err := f.parseGroup(args)
	if err != nil {
		return 0, err
	}
	cl, adm, err := f.connect()
	if err != nil {
		return 0, err
	}
	defer adm.Close()
	groups, err := describeGroups(ctx, cl, adm, []string{group})
	if err != nil {
		return 0, err
	}
	if len(groups) != 1 || groups[0].State == groupStateDead {
		return 0, fmt.Errorf("group %s does not exist", group)
	}
	g := groups[0]
	if *asJSON {
		return ExitOK, writeJSON(stdout, g)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "GROUP\t%s\nSTATE\t%s\nPROTOCOL\t%s\nMEMBERS\t%d\n\n", g.Group, g.State, cmp.Or(g.Protocol, "-"), len(g.Members))
	if len(g.Members) > 0 {
		fmt.Fprintln(tw, "MEMBER\tINSTANCE\tCLIENT\tHOST\tPARTITIONS")
		for _, m := range g.Members {
			var held []string
			for _, topic := range slices.Sorted(maps.Keys(m.Assigned)) {
				for _, p := range m.Assigned[topic] {
					held = append(held, fmt.Sprintf("%s/%d", topic, p))
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.ID, cmp.Or(m.InstanceID, "-"), m.ClientID, m.Host, cmp.Or(strings.Join(held, ","), "-"))
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
	for _, p := range g.Partitions {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", p.Topic, p.Partition, dash(p.Committed), p.End, dash(p.Lag), cmp.Or(p.Member, "-"))
	}
	return ExitOK, tw.Flush()
}

// resetTarget is where reset moves each partition: one of the --to-* flags.
type resetTarget struct {
	earliest, latest bool
	at               time.Time       // --to-datetime
	offsets          map[int32]int64 // --to-offset: only these partitions
}

// parseOffsets reads --to-offset: "P:O[,P:O...]", each partition once, no
// negative numbers.
func parseOffsets(s string) (map[int32]int64, error) {
	out := map[int32]int64{}
	for _, item := range strings.Split(s, ",") {
		pstr, ostr, ok := strings.Cut(strings.TrimSpace(item), ":")
		if !ok {
			return nil, fmt.Errorf("%q is not partition:offset", item)
		}
		p, err := strconv.ParseInt(pstr, 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("%q: partition %q is not a number of 0 or more", item, pstr)
		}
		o, err := strconv.ParseInt(ostr, 10, 64)
		if err != nil || o < 0 {
			return nil, fmt.Errorf("%q: offset %q is not a number of 0 or more", item, ostr)
		}
		if _, dup := out[int32(p)]; dup {
			return nil, fmt.Errorf("partition %d is given twice", p)
		}
		out[int32(p)] = o
	}
	return out, nil
}

// move is one partition's line of a reset plan.
type move struct {
	Partition     int32
	Current       *int64 // nil: nothing committed
	Target        int64
	Earliest, End int64
}

// planReset works out the target of each partition of topic; it changes nothing.
func planReset(ctx context.Context, cl sarama.Client, adm sarama.ClusterAdmin, group, topic string, to resetTarget) ([]move, error) {
	parts, err := cl.Partitions(topic)
	if err != nil {
		return nil, fmt.Errorf("topic %s: %w", topic, err)
	}
	slices.Sort(parts)
	if to.offsets != nil {
		var errs []error
		for _, p := range slices.Sorted(maps.Keys(to.offsets)) {
			if !slices.Contains(parts, p) {
				errs = append(errs, fmt.Errorf("--to-offset: topic %s has no partition %d (it has %d)", topic, p, len(parts)))
			}
		}
		if err := errors.Join(errs...); err != nil {
			return nil, usageError{err}
		}
		parts = slices.Sorted(maps.Keys(to.offsets))
	}
	committed, err := kafka.Committed(adm, group, map[string][]int32{topic: parts})
	if err != nil {
		return nil, err
	}
	var (
		plan []move
		errs []error
	)
	for _, p := range parts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := move{Partition: p}
		if c, ok := committed.Get(topic, p); ok {
			m.Current = &c
		}
		if m.Earliest, err = cl.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
			return nil, fmt.Errorf("earliest offset of %s/%d: %w", topic, p, err)
		}
		if m.End, err = cl.GetOffset(topic, p, sarama.OffsetNewest); err != nil {
			return nil, fmt.Errorf("end of %s/%d: %w", topic, p, err)
		}
		switch {
		case to.earliest:
			m.Target = m.Earliest
		case to.latest:
			m.Target = m.End
		case !to.at.IsZero():
			if m.Target, err = kafka.OffsetAt(cl, topic, p, to.at); err != nil {
				return nil, err
			}
		default:
			m.Target = to.offsets[p]
			if m.Target < m.Earliest || m.Target > m.End {
				errs = append(errs, fmt.Errorf("--to-offset: %s/%d offset %d is outside %d..%d (earliest retained .. end)", topic, p, m.Target, m.Earliest, m.End))
			}
		}
		plan = append(plan, m)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, usageError{err}
	}
	return plan, nil
}

func runGroupsReset(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newGroupFlags("reset <group> --topic T (--to-earliest | --to-latest | --to-datetime T | --to-offset P:O[,P:O...]) [--dry-run]",
		"Moves the committed offsets of a stopped consumer group on one topic: every partition to\nits earliest retained record, to its end, or to the first record at or after a time;\nor the partitions given to exact offsets (the others keep theirs). A group with\nactive members is refused: stop its consumers first. The plan (partition, current,\ntarget) is printed; with --dry-run nothing changes.", stderr)
	fs := f.set.FS
	topic := fs.String("topic", "", "the topic whose offsets move (required)")
	var to resetTarget
	fs.BoolVar(&to.earliest, "to-earliest", false, "move to the earliest retained offset")
	fs.BoolVar(&to.latest, "to-latest", false, "move to the end: skip everything not yet read")
	datetime := fs.String("to-datetime", "", "move to the first record whose timestamp is at or after this RFC 3339 time (the end where none is)")
	offsets := fs.String("to-offset", "", "move the partitions given to exact offsets: partition:offset[,partition:offset...]")
	dryRun := fs.Bool("dry-run", false, "print the plan and change nothing")
	group, err := f.parseGroup(args)
	if err != nil {
		return 0, err
	}
	if *topic == "" {
		return 0, usageError{errors.New("--topic is required")}
	}
	n := 0
	for _, set := range []bool{to.earliest, to.latest, *datetime != "", *offsets != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return 0, usageError{errors.New("give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset")}
	}
	if *datetime != "" {
		if to.at, err = time.Parse(time.RFC3339Nano, *datetime); err != nil {
			return 0, usageError{fmt.Errorf("--to-datetime: %q is not an RFC 3339 time such as 2026-12-01T09:30:00Z", *datetime)}
		}
	}
	if *offsets != "" {
		if to.offsets, err = parseOffsets(*offsets); err != nil {
			return 0, usageError{fmt.Errorf("--to-offset: %w", err)}
		}
	}

	cl, adm, err := f.connect()
	if err != nil {
		return 0, err
	}
	defer adm.Close()
	// Checked before planning as well as at the commit, so a dry run
	// tells at once that the real one would be refused.
	if err := kafka.CheckStopped(adm, group); err != nil {
		return 0, err
	}
	plan, err := planReset(ctx, cl, adm, group, *topic, to)
	if err != nil {
		return 0, err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tTOPIC\tPARTITION\tCURRENT\tTARGET\tEND")
	offs := kafka.Offsets{}
	for _, m := range plan {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\n", group, *topic, m.Partition, dash(m.Current), m.Target, m.End)
		offs.Set(*topic, m.Partition, m.Target)
	}
	if err := tw.Flush(); err != nil {
		return 0, err
	}
	if *dryRun {
		fmt.Fprintf(stdout, "dry run: group %s unchanged\n", group)
		return ExitOK, nil
	}
	if err := kafka.CommitStopped(cl, adm, group, offs, "topics groups reset"); err != nil {
		return 0, err
	}
	fmt.Fprintf(stdout, "reset group %s: %d partitions of %s\n", group, len(plan), *topic)
	return ExitOK, nil
}
