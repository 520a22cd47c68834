// Package logging builds the one zap logger a process uses and routes
// sarama's and go-redis's global loggers into it.
package logging

import (
	"context"
	"fmt"
	"strings"

	"github.com/IBM/sarama"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New returns a JSON production logger at level (debug, info, warn, error).
func New(level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(strings.ToLower(strings.TrimSpace(level)))
	if err != nil {
		return nil, fmt.Errorf("LOG_LEVEL: %w", err)
	}
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	return cfg.Build()
}

// RouteSarama sends sarama's logs to log at debug level. sarama has a global
// logger, so this is called once, in main.
func RouteSarama(log *zap.Logger) {
	sarama.Logger = saramaLogger{log.Named("sarama").WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

type saramaLogger struct{ s *zap.SugaredLogger }

func (l saramaLogger) Print(v ...any) { l.s.Debug(strings.TrimSpace(fmt.Sprint(v...))) }
func (l saramaLogger) Printf(format string, v ...any) {
	l.s.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
func (l saramaLogger) Println(v ...any) { l.s.Debug(strings.TrimSpace(fmt.Sprintln(v...))) }

// RouteRedis sends go-redis's logs to log at warn level: go-redis logs only
// trouble (dial failures, pool errors), which by default are raw lines on
// stderr among the JSON. Its logger is global, so this is called once, in main.
func RouteRedis(log *zap.Logger) {
	redis.SetLogger(redisLogger{log.Named("redis").WithOptions(zap.AddCallerSkip(2)).Sugar()})
}

type redisLogger struct{ s *zap.SugaredLogger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	l.s.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)))
}
