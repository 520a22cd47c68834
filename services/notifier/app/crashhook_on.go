//go:build crashhook

package app

import (
	"os"
	"sync"
	"syscall"

	"go.uber.org/zap"

	"backinstock/services/notifier/internal/edge"
	"backinstock/services/notifier/internal/pipeline"
	"backinstock/shared/config"
)

// The crash tests build the notifier with -tags crashhook; a production
// build has neither these flags nor the SIGKILL (crashhook_off.go), so no
// setting can make a deployed notifier kill itself.

// crashHooks says whether this build has the crash hook.
const crashHooks = true

func (c *Config) bindCrash(s *config.Set, d Config) {
	s.String(&c.CrashAt, "crash-at", "NOTIFIER_CRASH_AT", "", "TEST ONLY: SIGKILL self at this protocol step (after-reserve|after-publish|after-puback|after-mark)")
	s.Int(&c.CrashAfterN, "crash-after-n", "NOTIFIER_CRASH_AFTER_N", d.CrashAfterN, "TEST ONLY: crash the N-th time the step is reached")
}

// crashHook is the SIGKILL at a protocol step the crash tests use.
func crashHook(point string, afterN int, pub *edge.Publisher, log *zap.Logger) func(string) {
	if point == "" {
		return nil
	}
	var mu sync.Mutex
	hits := 0
	return func(p string) {
		if p != point {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		hits++
		if hits < afterN {
			return
		}
		if p == pipeline.AfterPublish {
			// Make sure the server has the messages: the point is "published,
			// not yet acknowledged to us".
			_ = pub.Flush()
		}
		log.Warn("NOTIFIER_CRASH_AT reached; killing this process", zap.String("point", p), zap.Int("hit", hits))
		_ = log.Sync()
		crashKill()
	}
}

// crashKill is the SIGKILL itself; its symbol is what the production-build
// test looks for.
func crashKill() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // never returns
}
