// Command devstack runs the whole system on one machine with nothing
// installed but Go: Kafka (kfake), NATS, Redis, Mailpit, the topic catalogue and the
// services. See `devstack --help`.
package main

import (
	"context"
	"os"

	"backinstock/deploy/devstack/internal/stack"
	"backinstock/shared/cli"
	"backinstock/shared/config"
)

func main() {
	os.Exit(cli.Program{Name: "devstack", Commands: []cli.Command{{
		Usage: "Usage: devstack [flags]\n\nRuns Kafka (kfake, 3 brokers), NATS (JetStream + websocket), Redis, Mailpit and the services locally,\nwrites <data-dir>/devstack.env and prints it. Stop with Ctrl-C.\n\nFlags:\n",
		Bind: func(s *config.Set) cli.Action {
			var cfg stack.Config
			cfg.Bind(s)
			return cli.Action{
				Validate: func() error { return cfg.Validate() },
				Run:      func(ctx context.Context, env cli.Env) error { return stack.Run(ctx, cfg, env.Log, env.Stdout) },
			}
		},
	}}}.Run(os.Args[1:], os.Stdout, os.Stderr))
}
