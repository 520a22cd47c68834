// Command inventory is the stock API: stock systems set levels; every
// sold-out → available transition becomes exactly one restock event in
// inventory.restock.v1 through a Redis outbox. See services/inventory/README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"backinstock/services/inventory/app"
	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
	"backinstock/shared/logging"
	"go.uber.org/zap"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var cfg app.Config
	var level string
	s := config.NewSet("inventory")
	s.FS.Usage = func() {
		fmt.Fprintf(s.FS.Output(), "Usage: inventory [flags]\n\nServes the stock API (PUT/POST/GET /v1/stock) and relays restock events to Kafka.\nEvery flag can be set by the environment variable named in its text.\n\n")
		s.FS.PrintDefaults()
	}
	cfg.Bind(s)
	s.String(&level, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	if err := s.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "inventory:", err)
		return 2
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "inventory: configuration:", err)
		return 2
	}
	log, err := logging.New(level)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inventory:", err)
		return 2
	}
	defer func() { _ = log.Sync() }()
	logging.RouteSarama(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	if err := app.Run(ctx, cfg, log, reg); err != nil {
		log.Error("inventory stopped", zap.Error(err))
		return 1
	}
	return 0
}
