package check

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// codeMapFile is the page that names every package of the workspace.
const codeMapFile = "docs/architecture.md"

// codeMapModules are the folders whose Go packages the code map must list.
var codeMapModules = []string{"topics", "shared", "services", "scripts", "deploy/devstack", "deploy/check"}

// codeMapRow matches a package row of the table: | `path` | what it holds |.
var codeMapRow = regexp.MustCompile("^\\|\\s*`([a-z0-9_./-]+)`\\s*\\|")

// checkCodeMap keeps docs/architecture.md true: each package it lists
// exists, and each package of the workspace is listed.
func (c *checker) checkCodeMap() {
	data, err := os.ReadFile(filepath.Join(c.root, codeMapFile))
	if err != nil {
		c.add(codeMapFile, "", "", "read the code map: %v", err)
		return
	}
	named := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if m := codeMapRow.FindStringSubmatch(line); m != nil {
			named[m[1]] = true
		}
	}
	have, err := goPackages(c.root, codeMapModules)
	if err != nil {
		c.add(codeMapFile, "", "", "list the packages: %v", err)
		return
	}
	for _, p := range sortedKeys(named) {
		if !have[p] {
			c.add(codeMapFile, "", p, "names a package that does not exist")
		}
	}
	for _, p := range sortedKeys(have) {
		if !named[p] {
			c.add(codeMapFile, "", p, "package is missing from the code map")
		}
	}
}

// goPackages lists the folders under root/dirs that hold Go files,
// relative to root; a folder of tests only (scripts/e2e) counts, since it
// is where a newcomer looks for those tests.
func goPackages(root string, dirs []string) (map[string]bool, error) {
	out := map[string]bool{}
	for _, d := range dirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, e fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && path == filepath.Join(root, d) {
				return filepath.SkipDir
			}
			if err != nil {
				return err
			}
			if e.IsDir() && (e.Name() == "node_modules" || e.Name() == "testdata" || strings.HasPrefix(e.Name(), ".")) {
				return filepath.SkipDir
			}
			if !e.IsDir() && strings.HasSuffix(path, ".go") {
				rel, err := filepath.Rel(root, filepath.Dir(path))
				if err != nil {
					return err
				}
				out[filepath.ToSlash(rel)] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
