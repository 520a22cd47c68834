// Command scalebench is `make bench-scale`: the end-to-end benchmark's big
// restock (scripts/internal/bench, exactly once checked at the edge) run
// once per configuration of fan-out parallelism and notifier replicas, then
// once with a larger restock, each on a fresh stack. It prints, per run,
// the throughput, the CPU-seconds per million notifications of each kind of
// process and how many cores were busy, so the cost per notification can
// be compared across configurations and restock sizes on the same machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"backinstock/scripts/internal/bench"
	"backinstock/scripts/internal/e2eenv"
	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// setup is one run's configuration.
type setup struct{ parallelism, replicas, users int }

// parseRuns reads "P:R,P:R": fan-out parallelism and replicas per run.
func parseRuns(s string, users int) ([]setup, error) {
	var out []setup
	for _, f := range strings.Split(s, ",") {
		p, r, ok := strings.Cut(strings.TrimSpace(f), ":")
		pi, err1 := strconv.Atoi(p)
		ri, err2 := strconv.Atoi(r)
		if !ok || err1 != nil || err2 != nil || pi < 1 || ri < 1 {
			return nil, fmt.Errorf("--runs: %q is not parallelism:replicas (both at least 1)", f)
		}
		out = append(out, setup{parallelism: pi, replicas: ri, users: users})
	}
	return out, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	var (
		runs, binDir string
		users, large int
	)
	s := config.NewSet("scalebench")
	s.FS.SetOutput(stderr)
	s.String(&runs, "runs", "SCALE_RUNS", "1:1,2:1,4:1,4:2,4:4", "configurations, each fan-out parallelism:replicas of the region's fan-out worker and notifier")
	s.Int(&users, "users", "SCALE_USERS", 1_000_000, "wishlisters of the restock in each configuration")
	s.Int(&large, "large", "SCALE_LARGE", 3_000_000, "wishlisters of a last run with the first configuration (0: none), to compare the cost per notification as the restock grows")
	s.String(&binDir, "bin-dir", "E2E_BIN_DIR", "", "use binaries already built there (default: go build them once into a temporary directory)")
	if err := s.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "scalebench:", err)
		return 2
	}
	setups, err := parseRuns(runs, users)
	if err == nil && users < 1 {
		err = errors.New("--users must be at least 1")
	}
	if err != nil {
		fmt.Fprintln(stderr, "scalebench:", err)
		return 2
	}
	if large > 0 {
		setups = append(setups, setup{parallelism: setups[0].parallelism, replicas: setups[0].replicas, users: large})
	}
	log := e2eenv.Printer{W: stdout, Tag: "scale"}
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	machine := bench.ThisMachine()
	log.Logf("machine: %s, %d cores, %s", machine.CPU, machine.Cores, machine.Memory)

	if binDir == "" {
		// Built once, for every run.
		dir, err := os.MkdirTemp("", "backinstock-scale-bin-")
		if err == nil {
			defer os.RemoveAll(dir)
			var root string
			if root, err = e2eenv.RepoRoot(); err == nil {
				binDir = filepath.Join(dir, "bin")
				log.Logf("building the binaries into %s", binDir)
				err = e2eenv.Build(ctx, root, binDir)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "scalebench:", err)
			return 1
		}
	}
	var rows []string
	for i, su := range setups {
		dir, err := os.MkdirTemp("", "backinstock-scale-")
		if err != nil {
			fmt.Fprintln(stderr, "scalebench:", err)
			return 1
		}
		log.Logf("run %d of %d: %d wishlisters, fan-out parallelism %d, %d fan-out worker(s) and notifier(s)", i+1, len(setups), su.users, su.parallelism, su.replicas)
		res, err := bench.Run(ctx, bench.Options{Dir: dir, BinDir: binDir, Users: su.users, Verify: true,
			Parallelism: su.parallelism, Replicas: su.replicas, Log: log})
		if err != nil {
			fmt.Fprintln(stderr, "scalebench:", err)
			fmt.Fprintln(stderr, "scalebench: work dir kept:", dir)
			return 1
		}
		_ = os.RemoveAll(dir)
		rows = append(rows, row(su, res))
	}
	fmt.Fprintf(stdout, "\nScale benchmark: %s, %d cores, %s, %s\n\n%s%s", machine.CPU, machine.Cores, machine.Memory, machine.Go, header, strings.Join(rows, ""))
	return 0
}

const header = "| wishlisters | fan-out parallelism | fan-out workers / notifiers | all in Kafka | all at the edge | notifications/s | busy cores | CPU-s per million: fan-out | notifier | redis-server | kfake + nats-server | everything | exactly once |\n" +
	"|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"

// row is one run's line: the CPU of each kind of process (every replica of
// the region's and the other regions' idle ones summed) per million.
func row(su setup, r bench.Result) string {
	kinds := map[string]float64{}
	for name, v := range r.CPU.Procs {
		switch {
		case strings.HasPrefix(name, "fanout-"):
			kinds["fanout"] += v
		case strings.HasPrefix(name, "notifier-"):
			kinds["notifier"] += v
		case name == "redis-server":
			kinds["redis"] += v
		case strings.HasPrefix(name, "driver"):
			kinds["driver"] += v
		}
	}
	per := func(v float64) string { return fmt.Sprintf("%.1f", v/float64(r.Delivered)*1e6) }
	once := "unchecked"
	if r.Counts != nil {
		once = "yes"
	}
	return fmt.Sprintf("| %d | %d | %d | %.1f s | %.1f s | %.0f | %.2f | %s | %s | %s | %s | %s | %s |\n",
		su.users, su.parallelism, su.replicas, r.Produced.Seconds(), r.Total.Seconds(), r.Rate(), r.CPU.Machine/r.Total.Seconds(),
		per(kinds["fanout"]), per(kinds["notifier"]), per(kinds["redis"]), per(kinds["driver"]), per(r.CPU.Machine), once)
}
