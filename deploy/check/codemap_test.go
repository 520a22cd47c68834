package check_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"backinstock/deploy/check"
	"backinstock/topics/catalog"
)

// TestCodeMapFollowsTheTree: a listed package that is gone and a package
// that is not listed are both problems.
func TestCodeMapFollowsTheTree(t *testing.T) {
	root := t.TempDir()
	write := func(path, text string) {
		t.Helper()
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("deploy/.keep", "")
	write("topics/edge/edge.go", "package edge\n")
	write("shared/kafka/group.go", "package kafka\n")
	write("docs/architecture.md", "| package | holds |\n|---|---|\n| `topics/edge` | the edge |\n| `shared/gone` | a package that was removed |\n")
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	probs, err := check.Run(check.Options{Root: root, Catalog: cat, Env: check.EnvTables{}, Metrics: map[string]bool{}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probs {
		if p.File == "docs/architecture.md" {
			got = append(got, p.Field+": "+p.Message)
		}
	}
	want := []string{
		"shared/gone: names a package that does not exist",
		"shared/kafka: package is missing from the code map",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("code map problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
