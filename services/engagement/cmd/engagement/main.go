// Command engagement follows what notifications lead to: it serves the
// tracked links every rendered message carries (/c/<token>: verify, count,
// write a click event to engagement.clicks.v1, redirect to the product).
//
//	engagement run       serve the tracked links, the engagement API and the reports; keep the report aggregates
//	engagement rebuild   wipe the report aggregates and rebuild them from the topics
package main

import (
	"context"
	"encoding/json"
	"os"

	"backinstock/services/engagement/app"
	"backinstock/shared/cli"
	"backinstock/shared/config"
)

const usage = `usage: engagement <command> [flags]

commands:
  run       serve the tracked links (/c/<token>: count the click, write it to engagement.clicks.v1, redirect to the product),
            the engagement API and the report page, and keep the report aggregates (consumer group engagement-reports)
  rebuild   wipe the report aggregates and read the topics again from the beginning (stop "run" first)

Run "engagement <command> --help" for the flags; every flag has an env variable.
`

func main() {
	os.Exit(cli.Program{Name: "engagement", Usage: usage, Commands: []cli.Command{
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
		{Name: "rebuild", Bind: func(s *config.Set) cli.Action {
			var cfg app.Config
			cfg.Bind(s)
			return cli.Action{
				Validate: func() error { return cfg.ValidateRebuild() },
				Run: func(ctx context.Context, env cli.Env) error {
					res, err := app.RunRebuild(ctx, cfg, env.Log)
					if err != nil {
						return err
					}
					return json.NewEncoder(env.Stdout).Encode(res)
				},
			}
		}},
	}}.Run(os.Args[1:], os.Stdout, os.Stderr))
}
