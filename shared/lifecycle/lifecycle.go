// Package lifecycle supervises a process's long-lived parts: it starts them
// together and, when the context ends or one part fails, stops them in the
// reverse of their start order, so a consumer stops before the producer it
// feeds and the HTTP server goes last.
package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
)

// Part is one long-lived component.
type Part struct {
	Name string
	Run  func(ctx context.Context) error
}

// Run runs every part until ctx ends or one returns; then cancels the parts
// one by one, last started first, waiting for each. It returns the first
// failure (a part returning nil before shutdown also stops the others).
func Run(ctx context.Context, log *zap.Logger, parts ...Part) error {
	type result struct {
		i   int
		err error
	}
	done := make(chan result, len(parts))
	cancels := make([]context.CancelFunc, len(parts))
	finished := make([]bool, len(parts))
	for i, p := range parts {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		cancels[i] = cancel
		go func() { done <- result{i, p.Run(pctx)} }()
	}
	var first error
	record := func(r result) {
		finished[r.i] = true
		if r.err != nil && !errors.Is(r.err, context.Canceled) {
			log.Error("part stopped with error", zap.String("part", parts[r.i].Name), zap.Error(r.err))
			if first == nil {
				first = fmt.Errorf("%s: %w", parts[r.i].Name, r.err)
			}
		} else {
			log.Info("part stopped", zap.String("part", parts[r.i].Name))
		}
	}
	select {
	case <-ctx.Done():
	case r := <-done:
		record(r)
	}
	for i := len(parts) - 1; i >= 0; i-- {
		if finished[i] {
			continue
		}
		cancels[i]()
		for !finished[i] {
			record(<-done)
		}
	}
	return first
}

// SignalContext ends on SIGINT or SIGTERM.
func SignalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}
