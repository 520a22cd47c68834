// Command topics validates the backinstock topic catalogue and makes a Kafka
// cluster match it (see internal/cli for the commands).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"backinstock/topics/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
