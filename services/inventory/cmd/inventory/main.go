// Command inventory is the stock API: stock systems set levels; every
// sold-out → available transition becomes exactly one restock event in
// inventory.restock.v1 through a Redis outbox. See services/inventory/README.md.
package main

import (
	"context"
	"os"

	"backinstock/services/inventory/app"
	"backinstock/shared/cli"
	"backinstock/shared/config"
)

func main() {
	os.Exit(cli.Program{Name: "inventory", Commands: []cli.Command{{
		Usage: "Usage: inventory [flags]\n\nServes the stock API (PUT/POST/GET /v1/stock) and relays restock events to Kafka.\nEvery flag can be set by the environment variable named in its text.\n\n",
		Bind: func(s *config.Set) cli.Action {
			var cfg app.Config
			cfg.Bind(s)
			return cli.Action{
				Validate: func() error { return cfg.Validate() },
				Run:      func(ctx context.Context, env cli.Env) error { return app.Run(ctx, cfg, env.Log, env.Registry) },
			}
		},
	}}}.Run(os.Args[1:], os.Stdout, os.Stderr))
}
