//go:build e2e

// Package e2e runs the real binaries as separate processes against the
// stack (kfake cluster, nats-server, redis-server) and drives them only
// through their HTTP APIs and the NATS edge, as a user would. Run it with
// `make e2e` (go test -tags e2e ...); `make test` leaves it out.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"backinstock/scripts/internal/e2eenv"
)

// faultRegion is the region of the large fault scenarios; its notifier is
// rate limited so a fault always lands in the middle of the work.
const faultRegion = "us-east-1"

// faultRate is the per-channel rate limit of faultRegion's notifier: with
// four channels, a 100,000-notification fan-out takes about 100000/4/rate
// seconds at the edge.
const faultRate = 1000

var (
	stack *e2eenv.Stack
	edge  *e2eenv.Edge
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "backinstock-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rate := fmt.Sprintf("app=%d,web=%d,email=%d,sms=%d", faultRate, faultRate, faultRate, faultRate)
	stack, err = e2eenv.Start(ctx, e2eenv.Options{
		Dir: dir, Log: e2eenv.Printer{W: os.Stdout, Tag: "e2e"}, BinDir: os.Getenv("E2E_BIN_DIR"),
		ServiceEnv: map[string][]string{
			"notifier-" + faultRegion: {"RATE_LIMITS=" + rate},
			// The wishlist API verifies the one-click unsubscribe links the
			// gateway scenario's gateway signs.
			"wishlist": {"UNSUBSCRIBE_KEYS=" + unsubscribeKeys},
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: start stack:", err)
		return 1
	}
	edge, err = stack.ConnectEdge()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: connect edge:", err)
		stack.Close()
		return 1
	}
	code := m.Run()
	edge.Close()
	stack.Close()
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Printf("e2e: logs and data kept in %s\n", dir)
	}
	return code
}
