// Command e2ebench is the end-to-end benchmark behind `make bench`: it builds
// and starts the whole pipeline locally (see scripts/internal/e2eenv),
// restocks one sku with a million wishlisters, measures the latency to the
// first edge delivery of a small sku over many restocks, prints a table and
// writes its section of docs/benchmarks.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"backinstock/scripts/internal/bench"
	"backinstock/scripts/internal/e2eenv"
	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	var (
		o      bench.Options
		out    string
		keep   bool
		noDocs bool
	)
	s := config.NewSet("e2ebench")
	s.FS.SetOutput(stderr)
	s.Int(&o.Users, "users", "BENCH_USERS", 1_000_000, "wishlisters of the big sku (one notification each)")
	s.Int(&o.Restocks, "restocks", "BENCH_RESTOCKS", 200, "restocks of the small sku for the latency percentiles")
	s.Int(&o.SmallUsers, "small-users", "BENCH_SMALL_USERS", 10, "wishlisters of the small sku")
	s.String(&o.Region, "region", "BENCH_REGION", "us-east-1", "region of both skus")
	s.Bool(&o.Verify, "verify", "BENCH_VERIFY", true, "read the big restock back from the edge and check it is exactly once")
	s.String(&o.BinDir, "bin-dir", "E2E_BIN_DIR", "", "use binaries already built there (default: go build into the work dir)")
	s.String(&out, "out", "BENCH_OUT", "", "Markdown file whose e2e-bench section is rewritten (default <repo>/docs/benchmarks.md)")
	s.Bool(&noDocs, "no-docs", "BENCH_NO_DOCS", false, "print only; leave docs/benchmarks.md alone")
	s.Bool(&keep, "keep", "BENCH_KEEP", false, "keep the work dir (logs, data) afterwards")
	if err := s.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "e2ebench:", err)
		return 2
	}
	log := e2eenv.Printer{W: stdout, Tag: "bench"}
	o.Log = log
	if out == "" && !noDocs {
		root, err := e2eenv.RepoRoot()
		if err != nil {
			fmt.Fprintln(stderr, "e2ebench:", err)
			return 2
		}
		out = filepath.Join(root, "docs", "benchmarks.md")
	}
	dir, err := os.MkdirTemp("", "backinstock-bench-")
	if err != nil {
		fmt.Fprintln(stderr, "e2ebench:", err)
		return 1
	}
	o.Dir = dir
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	machine := bench.ThisMachine()
	log.Logf("machine: %s, %d cores, %s; work dir %s", machine.CPU, machine.Cores, machine.Memory, dir)
	res, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintln(stderr, "e2ebench:", err)
		fmt.Fprintln(stderr, "e2ebench: work dir kept:", dir)
		return 1
	}
	if !keep {
		_ = os.RemoveAll(dir)
	}
	command := "make bench-e2e (part of make bench)"
	if len(args) > 0 {
		command = "go run ./scripts/cmd/e2ebench " + strings.Join(args, " ")
	}
	fmt.Fprintf(stdout, "\nEnd-to-end benchmark: %s, %d cores, %s\n\n%s\n", machine.CPU, machine.Cores, machine.Memory, res.Table())
	if !noDocs {
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			fmt.Fprintln(stderr, "e2ebench:", err)
			return 1
		}
		if err := bench.WriteSection(out, bench.Section(res, machine, command, time.Now())); err != nil {
			fmt.Fprintln(stderr, "e2ebench: write", out+":", err)
			return 1
		}
		fmt.Fprintf(stdout, "wrote the e2e-bench section of %s\n", out)
	}
	return 0
}
