package lifecycle_test

import (
	"runtime/debug"
	"testing"

	"backinstock/shared/lifecycle"
)

func TestTuneGCLeavesOperatorSettingsAlone(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))

	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	lifecycle.TuneGC(400, 64<<20)
	if got := debug.SetGCPercent(100); got != 400 {
		t.Fatalf("GOGC %d, want 400", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 64<<20 {
		t.Fatalf("memory limit %d, want %d", got, 64<<20)
	}

	t.Setenv("GOGC", "150")
	t.Setenv("GOMEMLIMIT", "2GiB")
	debug.SetGCPercent(150)
	debug.SetMemoryLimit(2 << 30) // what the runtime took from GOMEMLIMIT
	lifecycle.TuneGC(400, 64<<20)
	if got := debug.SetGCPercent(100); got != 150 {
		t.Fatalf("GOGC %d changed although the operator set it", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 2<<30 {
		t.Fatalf("memory limit %d changed although the operator set GOMEMLIMIT", got)
	}
}
