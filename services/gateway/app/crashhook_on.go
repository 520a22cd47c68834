//go:build crashhook

package app

import (
	"os"
	"strings"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"backinstock/services/gateway/internal/delivery"
	"backinstock/shared/config"
)

// The crash tests build the gateway with -tags crashhook; a production build
// has neither these flags nor the SIGKILL (crashhook_off.go), so no setting
// can make a deployed gateway kill itself.

// crashHooks says whether this build has the crash hook.
const crashHooks = true

func (c *Config) bindCrash(s *config.Set, d Config) {
	s.String(&c.CrashAt, "crash-at", "GATEWAY_CRASH_AT", "", "TEST ONLY: SIGKILL self at this protocol step ("+strings.Join(delivery.CrashPoints, "|")+")")
	s.Int(&c.CrashAfterN, "crash-after-n", "GATEWAY_CRASH_AFTER_N", d.CrashAfterN, "TEST ONLY: crash the N-th time the step is reached")
}

// crashHook is the SIGKILL at a protocol step the crash tests use.
func crashHook(point string, afterN int, log *zap.Logger) func(string) bool {
	if point == "" {
		return nil
	}
	var mu sync.Mutex
	hits := 0
	return func(p string) bool {
		if p != point {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		hits++
		if hits < afterN {
			return false
		}
		log.Warn("GATEWAY_CRASH_AT reached; killing this process", zap.String("point", p), zap.Int("hit", hits))
		_ = log.Sync()
		crashKill()
		return true // not reached
	}
}

// crashKill is the SIGKILL itself; its symbol is what the production-build
// test looks for.
func crashKill() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns
}
