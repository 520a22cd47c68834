// Package logging builds the one zap logger a process uses and routes
// sarama's global logger into it.
package logging

import (
	"fmt"
	"strings"

	"github.com/IBM/sarama"
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
