// Package cli is the topics command: validate the catalogue, plan and apply
// it against a cluster, list a cluster's topics. It lives here rather than in
// cmd/topics so the end-to-end test can call Run with arguments and buffers.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/IBM/sarama"

	"backinstock/shared/config"
	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
)

// Exit codes.
const (
	ExitOK      = 0
	ExitError   = 1
	ExitUsage   = 2
	ExitChanges = 3 // plan --exit-code found changes
)

const usage = `Usage: topics <command> [flags]

Keeps Kafka topics in line with the backinstock topic catalogue.

Commands:
  validate   check the catalogue: naming rule, partitions, replication, configs
  plan       show what apply would change on the cluster
  apply      create missing topics, grow partitions, set configs
  list       list the cluster's topics with partitions and configs
  deadletter list, show and redrive dead letters (topics deadletter --help)
  groups     consumer groups: list and describe with lag, reset a stopped group's offsets

Kafka is reached through KAFKA_BROKERS (comma-separated) or --brokers, with
SASL and TLS from KAFKA_SASL_* and KAFKA_TLS_*. Run "topics <command> --help"
for a command's flags.

Exit codes: 0 ok, 1 error, 2 usage, 3 plan --exit-code found changes.
`

// usageError marks a bad invocation (exit 2) as opposed to a failure (exit 1).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Run runs the command given by args (without the program name), writing
// results to stdout and problems to stderr, and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitUsage
	}
	cmd, rest := args[0], args[1:]
	var (
		code int
		err  error
	)
	switch cmd {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	case "validate":
		code, err = runValidate(rest, stdout, stderr)
	case "plan":
		code, err = runPlan(ctx, rest, stdout, stderr)
	case "apply":
		code, err = runApply(ctx, rest, stdout, stderr)
	case "list":
		code, err = runList(ctx, rest, stdout, stderr)
	case "deadletter":
		code, err = runDeadLetter(ctx, rest, stdout, stderr)
	case "groups":
		code, err = runGroups(ctx, rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "topics: unknown command %q\n\n%s", cmd, usage)
		return ExitUsage
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "topics %s: %v\n", cmd, err)
		return ExitUsage
	case err != nil:
		fmt.Fprintf(stderr, "topics %s: %v\n", cmd, err)
		return ExitError
	}
	return code
}

// flags is one subcommand's flag set with the settings the subcommands share.
type flags struct {
	set         *config.Set
	file        string
	brokers     string
	kafka       kafka.Config
	allowDelete bool
	fitCluster  bool
}

func newFlags(name, synopsis string, stderr io.Writer, withKafka bool) *flags {
	f := &flags{set: config.NewSet("topics " + name)}
	fs := f.set.FS
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: topics %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.file, "file", "", "catalogue YAML to use instead of the one built into this binary")
	if withKafka {
		fs.StringVar(&f.brokers, "brokers", "", "Kafka bootstrap brokers, comma-separated (overrides KAFKA_BROKERS and --kafka-brokers)")
		f.kafka.Bind(f.set)
	}
	return f
}

func (f *flags) addChangeFlags() {
	f.set.FS.BoolVar(&f.allowDelete, "allow-delete", false, "also delete topics that follow the naming rule, share a domain with the catalogue and are not in it")
	f.set.FS.BoolVar(&f.fitCluster, "fit-cluster", false, "cap replication factor and min.insync.replicas at the cluster's broker count (dev and test clusters)")
}

func (f *flags) parse(args []string) error {
	if err := f.set.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if f.set.FS.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(f.set.FS.Args(), " "))}
	}
	return nil
}

// catalogue loads --file, or the embedded catalogue.
func (f *flags) catalogue() (*catalog.Catalog, error) {
	if f.file == "" {
		return catalog.Default()
	}
	data, err := os.ReadFile(f.file)
	if err != nil {
		return nil, fmt.Errorf("read catalogue: %w", err)
	}
	cat, err := catalog.Load(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.file, err)
	}
	return cat, nil
}

// admin connects to the cluster named by the flags and environment.
func (f *flags) admin() (sarama.ClusterAdmin, error) {
	cfg := f.kafka
	if f.brokers != "" {
		cfg.Brokers = config.SplitList(f.brokers)
	}
	cfg.ClientID = "topics"
	if err := cfg.Validate(); err != nil {
		return nil, usageError{err}
	}
	return kafka.NewClusterAdmin(cfg) // its errors name the brokers
}

// fit applies --fit-cluster.
func (f *flags) fit(cat *catalog.Catalog, adm sarama.ClusterAdmin) (*catalog.Catalog, error) {
	if !f.fitCluster {
		return cat, nil
	}
	brokers, _, err := adm.DescribeCluster()
	if err != nil {
		return nil, fmt.Errorf("describe cluster: %w", err)
	}
	return cat.ForBrokers(len(brokers)), nil
}

func runValidate(args []string, stdout, stderr io.Writer) (int, error) {
	f := newFlags("validate", "Checks the catalogue (the built-in one, or --file) and lists its topics.", stderr, false)
	if err := f.parse(args); err != nil {
		return 0, err
	}
	cat, err := f.catalogue()
	if err != nil {
		return 0, err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tKEY\tVALUE")
	for _, t := range cat.Topics {
		value := t.Value
		if value == "" {
			value = "(raw)"
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", t.Name, t.Partitions, t.ReplicationFactor, t.Key, value)
	}
	if err := tw.Flush(); err != nil {
		return 0, err
	}
	fmt.Fprintf(stdout, "catalogue ok: %d topics\n", len(cat.Topics))
	return ExitOK, nil
}

// planFor loads the catalogue, connects and plans: the common start of plan
// and apply. The caller closes the admin.
func planFor(ctx context.Context, f *flags) (sarama.ClusterAdmin, *catalog.Catalog, catalog.Changes, error) {
	cat, err := f.catalogue()
	if err != nil {
		return nil, nil, catalog.Changes{}, err
	}
	adm, err := f.admin()
	if err != nil {
		return nil, nil, catalog.Changes{}, err
	}
	cat, err = f.fit(cat, adm)
	if err == nil {
		var ch catalog.Changes
		ch, err = catalog.Plan(ctx, adm, cat, f.allowDelete)
		if err == nil {
			return adm, cat, ch, nil
		}
	}
	_ = adm.Close()
	return nil, nil, catalog.Changes{}, err
}

func runPlan(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newFlags("plan", "Shows what apply would change to make the cluster match the catalogue.", stderr, true)
	f.addChangeFlags()
	exitCode := f.set.FS.Bool("exit-code", false, "exit 3 when the plan is not empty")
	if err := f.parse(args); err != nil {
		return 0, err
	}
	adm, _, ch, err := planFor(ctx, f)
	if err != nil {
		return 0, err
	}
	defer adm.Close()
	fmt.Fprint(stdout, ch.String())
	if *exitCode && !ch.Empty() {
		return ExitChanges, nil
	}
	return ExitOK, nil
}

func runApply(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newFlags("apply", "Creates missing topics, grows partitions and sets configs so the cluster matches the\ncatalogue. Running it again changes nothing. Topics are deleted only with --allow-delete.", stderr, true)
	f.addChangeFlags()
	if err := f.parse(args); err != nil {
		return 0, err
	}
	adm, cat, ch, err := planFor(ctx, f)
	if err != nil {
		return 0, err
	}
	defer adm.Close()
	fmt.Fprint(stdout, ch.String())
	if ch.Empty() {
		return ExitOK, nil
	}
	if err := catalog.Apply(ctx, adm, ch); err != nil {
		return 0, err
	}
	// Check the result: a broker that accepts a change and does not keep
	// it should fail the deployment, not pass silently.
	after, err := catalog.Plan(ctx, adm, cat, f.allowDelete)
	if err != nil {
		return 0, fmt.Errorf("plan after apply: %w", err)
	}
	if !after.Empty() {
		return 0, fmt.Errorf("the cluster still differs after apply:\n%s", after)
	}
	fmt.Fprintf(stdout, "applied %d changes\n", len(ch.Actions))
	return ExitOK, nil
}

func runList(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	f := newFlags("list", "Lists the cluster's topics with partitions, replication factor and the configs\nthat differ from the cluster defaults. Internal topics (__*) are left out unless --all.", stderr, true)
	all := f.set.FS.Bool("all", false, "include internal topics")
	if err := f.parse(args); err != nil {
		return 0, err
	}
	adm, err := f.admin()
	if err != nil {
		return 0, err
	}
	defer adm.Close()
	topics, err := catalog.ListCluster(ctx, adm)
	if err != nil {
		return 0, err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION\tCONFIGS")
	for _, t := range topics {
		if !*all && strings.HasPrefix(t.Name, "__") {
			continue
		}
		var cfg []string
		for _, k := range slices.Sorted(maps.Keys(t.Configs)) {
			cfg = append(cfg, k+"="+t.Configs[k])
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", t.Name, t.Partitions, t.ReplicationFactor, strings.Join(cfg, " "))
	}
	return ExitOK, tw.Flush()
}
