// Command devstack runs the whole system on one machine with nothing
// installed but Go: Kafka (kfake), NATS, Redis, the topic catalogue and the
// services. See `devstack --help`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"backinstock/deploy/devstack/internal/stack"
	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
	"backinstock/shared/logging"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	var cfg stack.Config
	s := config.NewSet("devstack")
	cfg.Bind(s)
	s.FS.Usage = func() {
		fmt.Fprintln(s.FS.Output(), "Usage: devstack [flags]\n\nRuns Kafka (kfake, 3 brokers), NATS (JetStream + websocket), Redis and the services locally,\nwrites <data-dir>/devstack.env and prints it. Stop with Ctrl-C.\n\nFlags:")
		s.FS.PrintDefaults()
	}
	if err := s.Parse(args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log, err := logging.New(cfg.LogLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	logging.RouteSarama(log)
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	return stack.Run(ctx, cfg, log, os.Stdout)
}
