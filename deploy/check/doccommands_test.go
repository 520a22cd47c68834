package check_test

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"backinstock/deploy/check"
)

// shellWords splits a command line as the shell would: quotes group,
// a ';' or '&&' outside quotes ends a command, a '#' starting a word ends
// the line.
func shellWords(line string) [][]string {
	var cmds [][]string
	var words []string
	var w strings.Builder
	inWord := false
	var q rune
	flush := func() {
		if inWord {
			words = append(words, w.String())
			w.Reset()
			inWord = false
		}
	}
	end := func() {
		flush()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	rs := []rune(line)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case q != 0:
			if r == q {
				q = 0
			} else {
				w.WriteRune(r)
			}
		case r == '\'' || r == '"':
			q, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			flush()
		case r == ';' || r == '|' || r == '&':
			end()
		case r == '#' && !inWord:
			end()
			return cmds
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	end()
	return cmds
}

// docCommandLines returns the logical lines (continuations joined) of
// every ```sh and ```bash block in the repository's Markdown files, with
// the file each came from.
func docCommandLines(t *testing.T, root string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "node_modules" || d.Name() == "bin") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".md") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(root, path)
		in := false
		var cur strings.Builder
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case !in && (line == "```sh" || line == "```bash"):
				in = true
			case in && line == "```":
				in = false
			case in && strings.HasSuffix(line, "\\"):
				cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			case in:
				cur.WriteString(line)
				out[rel] = append(out[rel], cur.String())
				cur.Reset()
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var (
	envAssign  = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`)
	subcommand = regexp.MustCompile(`^[a-z][a-z-]*$`)
	ourBinary  = regexp.MustCompile(`^(?:bin/|\./services/\w+/cmd/|\./topics/cmd/)?(inventory|wishlist|notifier|gateway|topics)$`)
)

// TestDocCommandLinesMatchBinaries: every command line in the Markdown
// docs that runs one of our binaries (by name, bin/<name> or go run
// ./…/cmd/<name>) names a subcommand the binary has, flags its --help
// lists, and environment variables (VAR=value before it) it binds. The
// curl commands run against the local stack in deploy/devstack's
// TestReadmeCommandsRunAgainstTheStack.
func TestDocCommandLinesMatchBinaries(t *testing.T) {
	root := repoRoot(t)
	dir := binaries(t)
	help := map[string]string{}
	helpOf := func(bin string, sub []string) string {
		key := bin + " " + strings.Join(sub, " ")
		if h, ok := help[key]; ok {
			return h
		}
		cmd := exec.Command(filepath.Join(dir, bin), append(append([]string(nil), sub...), "--help")...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		out, _ := cmd.CombinedOutput() // --help may exit 0 or 2
		help[key] = string(out)
		return help[key]
	}
	checked := 0
	for file, lines := range docCommandLines(t, root) {
		for _, line := range lines {
			for _, words := range shellWords(line) {
				var env []string
				for len(words) > 0 && envAssign.MatchString(words[0]) {
					name, _, _ := strings.Cut(words[0], "=")
					env = append(env, name)
					words = words[1:]
				}
				if len(words) >= 2 && words[0] == "go" && words[1] == "run" {
					words = words[2:]
				}
				if len(words) == 0 {
					continue
				}
				m := ourBinary.FindStringSubmatch(words[0])
				if m == nil {
					continue
				}
				bin, args := m[1], words[1:]
				var sub, flags []string
				for _, a := range args {
					if strings.HasPrefix(a, "-") {
						name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
						flags = append(flags, name)
					} else if len(flags) == 0 && subcommand.MatchString(a) && !strings.Contains(a, ".") {
						sub = append(sub, a)
					}
				}
				h := helpOf(bin, sub)
				if strings.Contains(h, "unknown command") {
					t.Errorf("%s: %q: %s has no command %q:\n%s", file, line, bin, strings.Join(sub, " "), h)
					continue
				}
				for _, f := range flags {
					if f != "help" && f != "h" && !strings.Contains(h, "-"+f+" ") && !strings.Contains(h, "-"+f+"\n") {
						t.Errorf("%s: %q: %s %s has no flag --%s", file, line, bin, strings.Join(sub, " "), f)
					}
				}
				known := check.EnvFromHelp(h)
				for _, e := range env {
					if !known[e] {
						t.Errorf("%s: %q: %s %s does not read %s", file, line, bin, strings.Join(sub, " "), e)
					}
				}
				checked++
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d documented command lines of our binaries found; the parser is broken", checked)
	}
	t.Logf("%d documented command lines of our binaries checked", checked)
}

// TestDocDeployCommandsNameWhatExists: the docker, docker compose and
// kubectl commands of the Markdown docs (CI has neither Docker nor a
// cluster to run them) name Dockerfile stages that exist (--target, also
// through a "for t in …" loop) and repository paths that exist (-f, -k,
// --file, and arguments under deploy/).
func TestDocDeployCommandsNameWhatExists(t *testing.T) {
	root := repoRoot(t)
	df, err := os.ReadFile(filepath.Join(root, "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?mi)^FROM\s+\S+\s+AS\s+(\S+)`).FindAllStringSubmatch(string(df), -1) {
		stages[m[1]] = true
	}
	checked := 0
	for file, lines := range docCommandLines(t, root) {
		loops := map[string][]string{} // "$t" → the loop's values
		for _, line := range lines {
			for _, words := range shellWords(line) {
				if len(words) > 3 && words[0] == "for" && words[2] == "in" {
					loops["$"+words[1]] = words[3:]
					continue
				}
				if len(words) == 0 || (words[0] != "docker" && words[0] != "kubectl") {
					continue
				}
				checked++
				for i, w := range words {
					var path string
					switch {
					case i > 0 && (words[i-1] == "-f" || words[i-1] == "-k" || words[i-1] == "--file") && !strings.HasPrefix(w, "-"):
						path = w
					case strings.HasPrefix(w, "deploy/") || strings.HasPrefix(w, "./deploy/"):
						path = w
					case i > 0 && words[i-1] == "--target":
						targets := []string{w}
						if vals, ok := loops[w]; ok {
							targets = vals
						}
						for _, tg := range targets {
							if !stages[tg] {
								t.Errorf("%s: %q: deploy/docker/Dockerfile has no stage %q", file, line, tg)
							}
						}
					}
					if path == "" || path == "." || strings.ContainsAny(path, "$*") {
						continue
					}
					// A path the command writes (edge-setup's --dir) or one
					// the reader makes (kept out of git) need not exist.
					if strings.Contains(path, "edge-setup") || strings.HasPrefix(path, "deploy/compose/edge") {
						continue
					}
					if _, err := os.Stat(filepath.Join(root, path)); err != nil {
						t.Errorf("%s: %q: %s does not exist", file, line, path)
					}
				}
			}
		}
	}
	if checked < 5 {
		t.Fatalf("only %d docker and kubectl commands found; the parser is broken", checked)
	}
	t.Logf("%d docker and kubectl commands checked", checked)
}
