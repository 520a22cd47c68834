package stack_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"backinstock/topics/unsubscribe"
)

// readmeShellBlocks returns the ```sh / ```bash blocks of a Markdown file,
// in order.
func readmeShellBlocks(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var blocks []string
	var cur *strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur == nil && (line == "```sh" || line == "```bash"):
			cur = &strings.Builder{}
		case cur != nil && line == "```":
			blocks = append(blocks, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		}
	}
	return blocks
}

// runnable keeps a block's commands that talk to a running stack (curl,
// kcat, and the shell lines around them), one logical command per line
// (continuations joined). Dropped: comments, commands with a "…"
// placeholder (a value the reader fills in), and commands of our binaries
// or of make (deploy/check's TestDocCommandLinesMatchBinaries holds those
// against the binaries' --help; make targets are CI's own steps).
var ourCommand = regexp.MustCompile(`(^|[\s;&|])(make|notifier|gateway|wishlist|inventory|bin/\S+|export)(\s|$)`)

func runnable(block string) []string {
	var out []string
	var cmd strings.Builder
	for _, line := range strings.Split(block, "\n") {
		if strings.HasSuffix(line, "\\") {
			cmd.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		if cmd.Len() == 0 && strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		cmd.WriteString(line)
		if openQuote(cmd.String()) {
			cmd.WriteString("\n") // a quoted argument goes on (JSON over lines)
			continue
		}
		c := strings.TrimSpace(cmd.String())
		cmd.Reset()
		switch {
		case c == "" || strings.Contains(c, "…"):
		case !strings.HasPrefix(c, "curl ") && !strings.HasPrefix(c, "kcat ") && ourCommand.MatchString(withoutComment(c)):
		default:
			out = append(out, c)
		}
	}
	return out
}

// TestReadmeCommandsRunAgainstTheStack runs the curl and kcat commands of
// the README and of each service's README, as written, against the local
// stack, so the documented requests stay ones the services accept. curl
// runs with --fail-with-body: a 4xx or 5xx fails the command, except where
// the README says the answer may be one (allowFail). The services' own
// default addresses (127.0.0.1:8081 …) become the stack's. kcat runs where
// it is installed (CI installs it).
func TestReadmeCommandsRunAgainstTheStack(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed")
	}
	env, dir := sharedStack(t)
	root, err := filepath.Abs(filepath.Join("..", "..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := unsubscribe.ParseKeys(env["UNSUBSCRIBE_KEYS"])
	if err != nil {
		t.Fatal(err)
	}
	unsubToken, err := keys.Sign("alice", "email")
	if err != nil {
		t.Fatal(err)
	}
	defaults := strings.NewReplacer(
		"http://127.0.0.1:8080", "$INVENTORY_URL", "http://127.0.0.1:8081", "$WISHLIST_URL",
		"http://127.0.0.1:8083", "$NOTIFIER_URL_US_EAST_1", "http://127.0.0.1:8084", "$GATEWAY_URL_US_EAST_1",
		".data/devstack.env", filepath.Join(dir, "devstack.env"))
	docs := []struct {
		file string
		// before[i] runs before block i: what the reader is assumed to have.
		before map[int]string
		// allowFail: commands containing one of these may answer 4xx.
		allowFail []string
	}{
		{file: "README.md"},
		{file: "services/inventory/README.md",
			// The bulk example shows one rejected item (mars-1).
			allowFail: []string{"mars-1"}},
		{file: "services/wishlist/README.md",
			before: map[int]string{
				0: `printf '%s\n' '{"user_id":"bob","sku":"kettle-2l","region":"us-east-1","channels":["app"]}' > wishlist.ndjson`,
				1: "TOKEN='dXJ...APA91b'",
				2: "TOKEN='" + unsubToken + "'",
			},
			// "remove (204, or 404)"; the conditional removal of a device
			// the first block already removed.
			allowFail: []string{"token_sha256="}},
		{file: "services/notifier/README.md"},
		{file: "services/gateway/README.md"},
		{file: "services/engagement/README.md"},
	}
	for _, d := range docs {
		t.Run(d.file, func(t *testing.T) {
			var script strings.Builder
			script.WriteString("set -euo pipefail\n")
			script.WriteString("curl() { command curl --fail-with-body --max-time 30 \"$@\"; }\n")
			// type -P looks for a file on PATH only: command -v would find
			// this function itself, and a machine without kcat failed here.
			script.WriteString("kcat() { if type -P kcat >/dev/null; then command kcat \"$@\"; else echo 'kcat not installed: skipped' >&2; fi; }\n")
			for k, v := range env {
				if regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`).MatchString(k) {
					script.WriteString("export " + k + "='" + strings.ReplaceAll(v, "'", `'\''`) + "'\n")
				}
			}
			n := 0
			for i, block := range readmeShellBlocks(t, filepath.Join(root, d.file)) {
				if pre, ok := d.before[i]; ok {
					script.WriteString(pre + "\n")
				}
				for _, c := range runnable(block) {
					c = defaults.Replace(c)
					if strings.HasPrefix(c, "curl ") || strings.HasPrefix(c, "kcat ") {
						n++
						script.WriteString("echo '>>> " + strings.ReplaceAll(c, "'", `'\''`) + "' >&2\n")
					}
					for _, a := range d.allowFail {
						if strings.Contains(c, a) {
							c = "command " + strings.Replace(c, "curl ", "curl --max-time 30 -o /dev/null -w '%{http_code}\\n' ", 1)
							break
						}
					}
					script.WriteString(c + "\n")
				}
			}
			if n == 0 {
				t.Fatalf("%s has no curl or kcat command to run", d.file)
			}
			cmd := exec.Command("bash", "-c", script.String())
			cmd.Dir = t.TempDir()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: a documented command failed (%v):\n%s", d.file, err, out)
			}
			t.Logf("%s: %d commands ran", d.file, n)
		})
	}
}

// withoutComment is c up to its trailing comment.
func withoutComment(c string) string {
	at, _ := scanShell(c)
	return c[:at]
}

// openQuote reports whether s ends inside a quoted string, as the shell
// reads it: quotes in a comment (an apostrophe in "# alice's …") do not
// count.
func openQuote(s string) bool {
	_, open := scanShell(s)
	return open
}

// scanShell reads s as the shell quotes it: where its comment starts
// (len(s) when it has none) and whether it ends inside a quoted string.
func scanShell(s string) (comment int, open bool) {
	var q rune
	prev := ' '
	for i, r := range s {
		switch {
		case q != 0:
			if r == q {
				q = 0
			}
		case r == '\'' || r == '"':
			q = r
		case r == '#' && (prev == ' ' || prev == '\t' || prev == '\n'):
			return i, false
		}
		prev = r
	}
	return len(s), q != 0
}
