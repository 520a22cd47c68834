package testenv_test

import (
	"os"
	"path/filepath"
	"testing"

	"backinstock/shared/testenv"
)

// TestBuildAndRunBinary: a main package built from "." is named after its
// directory, runs with only the environment given, and its exit code and
// output come back.
func TestBuildAndRunBinary(t *testing.T) {
	dir := t.TempDir()
	src := "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n\tfmt.Print(os.Getenv(\"GREETING\"), \" \", len(os.Args)-1)\n\tos.Exit(3)\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module hello\n\ngo 1.22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	t.Setenv("GOWORK", "off")
	bin := testenv.BuildBinary(t, ".")
	if filepath.Base(bin) != filepath.Base(dir) {
		t.Fatalf("binary %s, want it named after %s", bin, dir)
	}
	code, out := testenv.RunBinary(t, bin, []string{"a", "b"}, []string{"GREETING=hi"})
	if code != 3 || out != "hi 2" {
		t.Fatalf("exit %d, output %q; want 3, %q", code, out, "hi 2")
	}
}
