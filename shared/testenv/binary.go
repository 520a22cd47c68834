package testenv

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildBinary compiles the main package pkg (an import path, or a path
// relative to the test's directory) into a temporary directory, with the
// build tags given, and returns the binary's path. Every test build of a
// service binary goes through here with the flags the Dockerfile builds
// with (CGO_ENABLED=0, no -race), so the tests of make test share one
// build cache for them instead of compiling the services once per set of
// flags.
func BuildBinary(t testing.TB, pkg string, tags ...string) string {
	t.Helper()
	name := filepath.Base(pkg)
	if name == "." {
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		name = filepath.Base(wd)
	}
	bin := filepath.Join(t.TempDir(), name)
	args := []string{"build", "-o", bin}
	if len(tags) > 0 {
		args = append(args, "-tags", strings.Join(tags, ","))
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s %s: %v\n%s", strings.Join(args, " "), pkg, err, out)
	}
	return bin
}

// RunBinary runs bin with args, with PATH and env as its whole environment,
// and returns its exit code and combined output.
func RunBinary(t testing.TB, bin string, args, env []string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), string(out)
	case err != nil:
		t.Fatalf("run %s %v: %v", bin, args, err)
	}
	return 0, string(out)
}
