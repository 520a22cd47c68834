// Command gateway delivers a region's notifications from the NATS
// JetStream edge to people: email over SMTP so far (SMS, mobile and web
// push, webhooks later), at most once per notification as far as the
// provider allows, with every outcome written to delivery.status.v1.
//
//	gateway run --region R [--channels email]   read edge.R.<channel>.> and deliver
package main

import (
	"context"
	"os"

	"backinstock/services/gateway/app"
	"backinstock/shared/cli"
	"backinstock/shared/config"
)

const usage = `usage: gateway <command> [flags]

commands:
  run      deliver a region's edge notifications (email over SMTP) and write their receipts

Run "gateway <command> --help" for the flags; every flag has an env variable.
`

func main() {
	os.Exit(cli.Program{Name: "gateway", Usage: usage, Commands: []cli.Command{
		{Name: "run", Bind: func(s *config.Set) cli.Action {
			var cfg app.Config
			cfg.Bind(s)
			return cli.Action{
				Validate: func() error { return cfg.Validate() },
				Run: func(ctx context.Context, env cli.Env) error {
					return app.Run(ctx, cfg, env.Log, env.Registry)
				},
			}
		}},
	}}.Run(os.Args[1:], os.Stdout, os.Stderr))
}
