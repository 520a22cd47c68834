// Command wishlist runs the wishlist service: the HTTP API (serve), a
// region's fan-out worker (fanout --region R), a window of restocks fanned
// out again (replay --region R --from T1 --to T2), the store rebuild from
// wishlist.changes.v1 (rebuild) and the bulk import (import --file F).
package main

import (
	"context"
	"encoding/json"
	"os"

	"backinstock/services/wishlist/app"
	"backinstock/shared/cli"
	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
)

const usage = `usage: wishlist <command> [flags]

commands:
  serve              the wishlist HTTP API
  fanout --region R  the fan-out worker of region R (consumer group fanout.R)
  replay --region R --from T1 --to T2
                     fan out again the restocks of [T1, T2), beside the group (its offsets untouched)
  rebuild            restore the Redis store from wishlist.changes.v1
  import --file F    load NDJSON wishlist entries (same code as POST /v1/wishlists:import)

Every command answers --help with its settings (environment variables, flags override).
`

func main() {
	os.Exit(cli.Program{Name: "wishlist", Usage: usage, Commands: []cli.Command{
		{Name: "serve", Bind: func(s *config.Set) cli.Action {
			cfg := bind(s, (*app.Config).BindServe)
			return cli.Action{
				Validate: func() error { return cfg.ValidateServe() },
				Run:      func(ctx context.Context, env cli.Env) error { return app.RunServe(ctx, *cfg, env.Log, env.Registry) },
			}
		}},
		{Name: "fanout", Bind: func(s *config.Set) cli.Action {
			cfg := bind(s, (*app.Config).BindFanout)
			return cli.Action{
				Validate: func() error { return cfg.ValidateFanout() },
				Run: func(ctx context.Context, env cli.Env) error {
					// A large fan-out allocates page after page of records: at GOGC=100
					// the collector was a fifth of the worker's CPU. The soft limit keeps
					// the peak RSS bounded (issue #4: under 150 MB).
					lifecycle.TuneGC(400, 120<<20)
					return app.RunFanout(ctx, *cfg, env.Log, env.Registry)
				},
			}
		}},
		// replay is an operator's one-shot: quiet unless something is wrong.
		{Name: "replay", LogLevel: "warn", Bind: func(s *config.Set) cli.Action {
			cfg := bind(s, (*app.Config).BindReplay)
			return cli.Action{
				Validate: func() error { return cfg.ValidateReplay() },
				Run: func(ctx context.Context, env cli.Env) error {
					return app.RunReplay(ctx, *cfg, env.Stdout, env.Log, env.Registry)
				},
			}
		}},
		{Name: "rebuild", Bind: func(s *config.Set) cli.Action {
			cfg := bind(s, nil)
			return cli.Action{
				Validate: func() error { return cfg.Validate() },
				Run: func(ctx context.Context, env cli.Env) error {
					res, err := app.RunRebuild(ctx, *cfg, env.Log)
					if err != nil {
						return err
					}
					return json.NewEncoder(env.Stdout).Encode(res)
				},
			}
		}},
		{Name: "import", Bind: func(s *config.Set) cli.Action {
			cfg := bind(s, (*app.Config).BindImport)
			return cli.Action{
				Validate: func() error { return cfg.ValidateImport() },
				Run: func(ctx context.Context, env cli.Env) error {
					res, err := app.RunImport(ctx, *cfg, env.Log)
					// A failed import still reports how far it got.
					_ = json.NewEncoder(env.Stdout).Encode(res)
					return err
				},
			}
		}},
	}}.Run(os.Args[1:], os.Stdout, os.Stderr))
}

// bind registers the settings every command shares and then the command's own.
func bind(s *config.Set, own func(*app.Config, *config.Set)) *app.Config {
	cfg := &app.Config{}
	cfg.Bind(s)
	if own != nil {
		own(cfg, s)
	}
	return cfg
}
