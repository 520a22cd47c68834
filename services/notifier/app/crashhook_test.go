package app_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestProductionBuildHasNoCrashHook builds the notifier as a deployment
// does and as the crash tests do: only the latter has the crash flags and
// the SIGKILL (its symbol), so no setting can make a deployed notifier kill
// itself. The crashhook build is checked too, so the test cannot pass by
// looking for the wrong thing.
func TestProductionBuildHasNoCrashHook(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the notifier twice")
	}
	dir := t.TempDir()
	check := func(tags string, want bool) {
		bin := filepath.Join(dir, "notifier"+tags)
		args := []string{"build", "-o", bin}
		if tags != "" {
			args = append(args, "-tags", tags)
		}
		cmd := exec.Command("go", append(args, "backinstock/services/notifier/cmd/notifier")...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, out)
		}
		help, _ := exec.Command(bin, "run", "--help").CombinedOutput()
		if got := strings.Contains(string(help), "NOTIFIER_CRASH_AT"); got != want {
			t.Errorf("tags %q: --help lists NOTIFIER_CRASH_AT = %v, want %v\n%s", tags, got, want, help)
		}
		syms, err := exec.Command("go", "tool", "nm", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go tool nm: %v\n%s", err, syms)
		}
		if got := strings.Contains(string(syms), "services/notifier/app.crashKill"); got != want {
			t.Errorf("tags %q: binary has app.crashKill = %v, want %v", tags, got, want)
		}
	}
	check("", false)
	check("crashhook", true)
}
