package main

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// scratchRepo copies what deploycheck reads from the real repository (the
// deployment files, the catalogue, the READMEs with the config tables and
// the Go sources it scans for metric names) into a directory a test may break.
func scratchRepo(t *testing.T) string {
	t.Helper()
	real, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	keep := func(rel string) bool {
		switch {
		case strings.HasPrefix(rel, "deploy/k8s/"), strings.HasPrefix(rel, "deploy/compose/"),
			strings.HasPrefix(rel, "deploy/docker/"), strings.HasPrefix(rel, "deploy/grafana/"):
			return true
		case rel == "topics/catalog.yaml", rel == "topics/README.md":
			return true
		case strings.HasPrefix(rel, "services/") || strings.HasPrefix(rel, "shared/"):
			return strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "README.md")
		}
		return false
	}
	err = filepath.WalkDir(real, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(real, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel == ".git" || rel == ".data" || rel == "bin" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !keep(rel) {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		target := filepath.Join(tmp, rel)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return tmp
}

func deploycheck(t *testing.T, root string) (int, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run([]string{"--root", root}, &out, &errOut)
	return code, out.String() + errOut.String()
}

// TestLintCommandFailsOnMisspeltField is what `make lint` runs: the same
// tree passes or fails exactly on the typo.
func TestLintCommandFailsOnMisspeltField(t *testing.T) {
	root := scratchRepo(t)
	baseCode, baseOut := deploycheck(t, root)

	for _, tc := range []struct{ file, old, new, want string }{
		{"deploy/k8s/base/notifier.yaml", "  replicas: 2\n", "  replicsa: 2\n", "Deployment/notifier: spec.replicsa"},
		{"deploy/k8s/base/inventory.yaml", "containerPort: 8080", "containerPrt: 8080", "spec.template.spec.containers[0].ports[0].containerPrt"},
	} {
		broken := scratchRepo(t)
		path := filepath.Join(broken, tc.file)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.Replace(string(data), tc.old, tc.new, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out := deploycheck(t, broken)
		if code != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%s broken: exit %d, want 1 with %q in:\n%s", tc.file, code, tc.want, out)
		}
	}
	if strings.Contains(baseOut, "unknown field") {
		t.Errorf("the unbroken copy reports an unknown field:\n%s", baseOut)
	}
	if baseCode != 0 {
		t.Logf("the unbroken copy is not clean yet (exit %d):\n%s", baseCode, baseOut)
	}
}

// TestLintCommandPassesOnRealFiles runs deploycheck on the repository itself.
func TestLintCommandPassesOnRealFiles(t *testing.T) {
	code, out := deploycheck(t, filepath.Join("..", "..", "..", ".."))
	if code != 0 {
		t.Fatalf("deploycheck on the repository: exit %d\n%s", code, out)
	}
}
