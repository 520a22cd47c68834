// Command wishlist runs the wishlist service: the HTTP API (serve), a
// region's fan-out worker (fanout --region R), the store rebuild from
// wishlist.changes.v1 (rebuild) and the bulk import (import --file F).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"backinstock/services/wishlist/app"
	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
	"backinstock/shared/logging"
)

const usage = `usage: wishlist <command> [flags]

commands:
  serve              the wishlist HTTP API
  fanout --region R  the fan-out worker of region R (consumer group fanout.R)
  rebuild            restore the Redis store from wishlist.changes.v1
  import --file F    load NDJSON wishlist entries (same code as POST /v1/wishlists:import)

Every command answers --help with its settings (environment variables, flags override).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd := args[0]
	var cfg app.Config
	set := config.NewSet("wishlist " + cmd)
	set.FS.SetOutput(stderr)
	cfg.Bind(set)
	switch cmd {
	case "serve":
		cfg.BindServe(set)
	case "fanout":
		cfg.BindFanout(set)
	case "rebuild":
	case "import":
		cfg.BindImport(set)
	default:
		fmt.Fprintf(stderr, "wishlist: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err := set.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "wishlist:", err)
		return 2
	}
	validate := map[string]func() error{"serve": cfg.ValidateServe, "fanout": cfg.ValidateFanout, "rebuild": cfg.Validate, "import": cfg.ValidateImport}[cmd]
	if err := validate(); err != nil {
		fmt.Fprintln(stderr, "wishlist "+cmd+": invalid configuration:\n"+err.Error())
		return 2
	}
	log, err := logging.New(cfg.LogLevel)
	if err != nil {
		fmt.Fprintln(stderr, "wishlist:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	logging.RouteSarama(log)
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	switch cmd {
	case "serve":
		err = app.RunServe(ctx, cfg, log, reg)
	case "fanout":
		// A large fan-out allocates page after page of records: at GOGC=100
		// the collector was a fifth of the worker's CPU. The soft limit keeps
		// the peak RSS bounded (issue #4: under 150 MB).
		lifecycle.TuneGC(400, 120<<20)
		err = app.RunFanout(ctx, cfg, log, reg)
	case "rebuild":
		var res app.RebuildResult
		res, err = app.RunRebuild(ctx, cfg, log)
		if err == nil {
			_ = json.NewEncoder(stdout).Encode(res)
		}
	case "import":
		var res app.ImportResult
		res, err = app.RunImport(ctx, cfg, log)
		_ = json.NewEncoder(stdout).Encode(res)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("wishlist "+cmd+" failed", zap.Error(err))
		return 1
	}
	return 0
}
