//go:build !crashhook

package app

import (
	"go.uber.org/zap"

	"backinstock/services/notifier/internal/edge"
	"backinstock/shared/config"
)

// crashHooks says whether this build has the crash hook: a production build
// does not (see crashhook_on.go).
const crashHooks = false

func (c *Config) bindCrash(*config.Set, Config) {}

func crashHook(string, int, *edge.Publisher, *zap.Logger) func(string) { return nil }
