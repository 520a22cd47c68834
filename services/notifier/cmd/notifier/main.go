// Command notifier delivers a region's notifications from Kafka to the NATS
// JetStream edge exactly once per (user, sku, region, episode, channel).
//
//	notifier run --region R        consume notify.R.<channel>.v1 and publish to edge.R.<channel>.<user>
//	notifier replay --region R --from <RFC3339|beginning>   reset group notifier.R (group stopped)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"backinstock/services/notifier/app"
	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
	"backinstock/shared/logging"
	"go.uber.org/zap"
)

const usage = `usage: notifier <command> [flags]

commands:
  run      consume a region's notify topics and deliver to the NATS edge
  replay   reset the region's consumer group to a time or the beginning

Run "notifier <command> --help" for the flags; every flag has an env variable.
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
	cmd, rest := args[0], args[1:]
	var logLevel string
	switch cmd {
	case "run":
		var cfg app.Config
		s := config.NewSet("notifier run")
		s.FS.SetOutput(stderr)
		cfg.Bind(s)
		s.String(&logLevel, "log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
		if code, done := parse(s, rest, stderr); done {
			return code
		}
		log, err := newLogger(logLevel)
		if err != nil {
			fmt.Fprintln(stderr, "notifier:", err)
			return 2
		}
		defer log.Sync() //nolint:errcheck // best effort at exit
		// Every record allocates its decoded notification, keys and publish
		// futures while the live heap stays small: at GOGC=100 the collector
		// was a seventh of notifier-bench's CPU profile.
		lifecycle.TuneGC(400, 1<<30)
		ctx, stop := lifecycle.SignalContext(context.Background())
		defer stop()
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		if err := app.Run(ctx, cfg, log, reg); err != nil {
			log.Error("notifier run", zap.Error(err))
			return 1
		}
		return 0
	case "replay":
		var cfg app.ReplayConfig
		s := config.NewSet("notifier replay")
		s.FS.SetOutput(stderr)
		cfg.Bind(s)
		s.String(&logLevel, "log-level", "LOG_LEVEL", "warn", "debug, info, warn or error")
		if code, done := parse(s, rest, stderr); done {
			return code
		}
		log, err := newLogger(logLevel)
		if err != nil {
			fmt.Fprintln(stderr, "notifier:", err)
			return 2
		}
		defer log.Sync() //nolint:errcheck // best effort at exit
		if err := app.Replay(context.Background(), cfg, stdout, log); err != nil {
			fmt.Fprintln(stderr, "notifier replay:", err)
			return 1
		}
		return 0
	default:
		fmt.Fprintf(stderr, "notifier: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// newLogger builds the process's logger and routes sarama's into it.
func newLogger(level string) (*zap.Logger, error) {
	log, err := logging.New(level)
	if err != nil {
		return nil, err
	}
	logging.RouteSarama(log)
	return log, nil
}

// parse handles --help (exit 0) and bad flags or env (exit 2).
func parse(s *config.Set, args []string, stderr io.Writer) (int, bool) {
	err := s.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		return 0, true
	}
	if err != nil {
		fmt.Fprintln(stderr, "notifier:", err)
		return 2, true
	}
	return 0, false
}
