package lifecycle

import (
	"os"
	"runtime/debug"
)

// TuneGC runs the collector less often (GOGC=percent) under a soft memory
// limit, for binaries that keep little memory live but allocate a lot per
// record, where the default GOGC=100 spends a large share of the CPU
// collecting. GOGC and GOMEMLIMIT, when the operator sets them, win. It is
// process-wide, so only a binary's main calls it, never code that runs
// in-process beside other services (the local stack).
func TuneGC(percent int, softLimitBytes int64) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(percent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(softLimitBytes)
	}
}
