// Command gateway delivers a region's notifications from the NATS
// JetStream edge to people: email over SMTP so far (SMS, mobile and web
// push, webhooks later), at most once per notification as far as the
// provider allows, with every outcome written to delivery.status.v1.
//
//	gateway run --region R [--channels email]   read edge.R.<channel>.> and deliver
//	gateway vapid-keys                          print a new VAPID key pair for Web Push
package main

import (
	"context"
	"fmt"
	"os"

	"backinstock/services/gateway/app"
	"backinstock/services/gateway/internal/webpush"
	"backinstock/shared/cli"
	"backinstock/shared/config"
)

const usage = `usage: gateway <command> [flags]

commands:
  run         deliver a region's edge notifications (email over SMTP, app push over FCM, Web Push) and write their receipts
  vapid-keys  print a new VAPID key pair (VAPID_PUBLIC_KEY, VAPID_PRIVATE_KEY) for the web channel

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
		{Name: "vapid-keys", LogLevel: "warn", Bind: func(*config.Set) cli.Action {
			return cli.Action{Run: func(_ context.Context, env cli.Env) error {
				pub, priv, err := webpush.GenerateKeys()
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(env.Stdout, "VAPID_PUBLIC_KEY=%s\nVAPID_PRIVATE_KEY=%s\n", pub, priv)
				return err
			}}
		}},
	}}.Run(os.Args[1:], os.Stdout, os.Stderr))
}
