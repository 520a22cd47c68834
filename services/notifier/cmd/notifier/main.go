// Command notifier delivers a region's notifications from Kafka to the NATS
// JetStream edge exactly once per (user, sku, region, episode, channel).
//
//	notifier run --region R        consume notify.R.<channel>.v1 and publish to edge.R.<channel>.<user>
//	notifier replay --region R --from <RFC3339|beginning>   reset group notifier.R (group stopped)
//	notifier replay --region R --from T1 --to T2   deliver [T1, T2) again beside the group (offsets untouched)
//	notifier edge-setup --dir D    write the NATS edge's operator, accounts and credentials
package main

import (
	"context"
	"os"

	"backinstock/services/notifier/app"
	"backinstock/shared/cli"
	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
)

const usage = `usage: notifier <command> [flags]

commands:
  run      consume a region's notify topics and deliver to the NATS edge
  replay   reset the region's consumer group to a time or the beginning,
           or with --to replay only [--from, --to) beside the group
  edge-setup  write a new NATS edge trust setup (operator, accounts, creds) into a directory

Run "notifier <command> --help" for the flags; every flag has an env variable.
`

func main() {
	os.Exit(cli.Program{Name: "notifier", Usage: usage, Commands: []cli.Command{
		{Name: "run", Bind: func(s *config.Set) cli.Action {
			var cfg app.Config
			cfg.Bind(s)
			return cli.Action{
				Validate: func() error { return cfg.Validate() },
				Run: func(ctx context.Context, env cli.Env) error {
					// Every record allocates its decoded notification, keys and publish
					// futures while the live heap stays small: at GOGC=100 the collector
					// was a seventh of notifier-bench's CPU profile.
					lifecycle.TuneGC(400, 1<<30)
					return app.Run(ctx, cfg, env.Log, env.Registry)
				},
			}
		}},
		// replay is an operator's one-shot: quiet unless something is wrong.
		{Name: "replay", LogLevel: "warn", Bind: func(s *config.Set) cli.Action {
			var cfg app.ReplayConfig
			cfg.Bind(s)
			return cli.Action{
				Validate: func() error { return cfg.Validate() },
				Run: func(ctx context.Context, env cli.Env) error {
					return app.Replay(ctx, cfg, env.Stdout, env.Log, env.Registry)
				},
			}
		}},
		{Name: "edge-setup", LogLevel: "warn", Bind: func(s *config.Set) cli.Action {
			var cfg app.EdgeSetupConfig
			cfg.Bind(s)
			return cli.Action{
				Validate: func() error { return cfg.Validate() },
				Run:      func(_ context.Context, env cli.Env) error { return app.EdgeSetup(cfg, env.Stdout) },
			}
		}},
	}}.Run(os.Args[1:], os.Stdout, os.Stderr))
}
