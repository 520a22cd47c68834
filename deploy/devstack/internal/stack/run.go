package stack

import (
	"context"
	"fmt"
	"io"

	"go.uber.org/zap"
)

// Run starts the infrastructure and, unless InfraOnly, the services; writes
// devstack.env once everything answers; and stops it all when ctx ends.
func Run(ctx context.Context, cfg Config, log *zap.Logger, out io.Writer) error {
	in, err := StartInfra(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := WriteEnv(cfg.DataDir, in.Env, out); err != nil {
		return err
	}
	if cfg.InfraOnly {
		fmt.Fprintln(out, "# infrastructure only (--infra-only): Kafka, NATS and Redis are up. Ctrl-C stops them.")
	} else {
		fmt.Fprintln(out, "# the services join the stack as they are built; for now Kafka, NATS and Redis are up. Ctrl-C stops them.")
	}
	<-ctx.Done()
	log.Info("stopping")
	return nil
}
