//go:build !crashhook

package app

import (
	"go.uber.org/zap"

	"backinstock/shared/config"
)

// crashHooks says whether this build has the crash hook: a production build
// does not (see crashhook_on.go).
const crashHooks = false

func (c *Config) bindCrash(*config.Set, Config) {}

func crashHook(string, int, *zap.Logger) func(string) bool { return nil }
