package check

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"backinstock/shared/config"
	"backinstock/shared/kafka"
)

// Services are the binaries deployed; each documents its settings in a
// config table in its README (topics in topics/README.md).
var Services = []string{"inventory", "wishlist", "notifier", "gateway", "engagement", "topics"}

func readmeOf(root, svc string) string {
	if svc == "topics" {
		return filepath.Join(root, "topics", "README.md")
	}
	return filepath.Join(root, "services", svc, "README.md")
}

var envName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// LoadEnvTables reads the environment variables each service documents in
// the config table of its README (the table whose header has a column named
// like "env"), plus the Kafka connection keys shared/kafka binds for every
// service. A README without such a table is a problem.
func LoadEnvTables(root string) (EnvTables, []Problem) {
	kafkaKeys := KafkaEnv()
	out := EnvTables{}
	var probs []Problem
	for _, svc := range Services {
		set := map[string]bool{}
		for k := range kafkaKeys {
			set[k] = true
		}
		path := readmeOf(root, svc)
		rel, _ := filepath.Rel(root, path)
		data, err := os.ReadFile(path)
		if err != nil && svc == "topics" {
			// The catalogue tool reads only the Kafka keys bound above.
			out[svc] = set
			continue
		}
		if err != nil {
			probs = append(probs, Problem{File: filepath.ToSlash(rel), Message: fmt.Sprintf("cannot read the config table: %v", err)})
			continue
		}
		names := EnvFromMarkdown(data)
		if len(names) == 0 && svc == "topics" {
			out[svc] = set
			continue
		}
		if len(names) == 0 {
			probs = append(probs, Problem{File: filepath.ToSlash(rel), Message: "no config table with an env column"})
			continue
		}
		for _, n := range names {
			set[n] = true
		}
		out[svc] = set
	}
	return out, probs
}

// KafkaEnv is the set of environment variables shared/kafka.Config binds,
// read from the real flag set rather than a copy of the list.
func KafkaEnv() map[string]bool {
	s := config.NewSet("kafka")
	var kc kafka.Config
	kc.Bind(s)
	return EnvFromFlagSet(s)
}

var usageEnv = regexp.MustCompile(`\(env ([A-Z][A-Z0-9_]*)\)`)

// EnvFromFlagSet lists the environment variables named in a config set's
// usage strings ("... (env NAME)"), the form shared/config writes.
func EnvFromFlagSet(s *config.Set) map[string]bool {
	out := map[string]bool{}
	s.FS.VisitAll(func(f *flag.Flag) {
		for _, m := range usageEnv.FindAllStringSubmatch(f.Usage, -1) {
			out[m[1]] = true
		}
	})
	return out
}

// EnvFromHelp lists the environment variables named in a command's --help
// output.
func EnvFromHelp(help string) map[string]bool {
	out := map[string]bool{}
	for _, m := range usageEnv.FindAllStringSubmatch(help, -1) {
		out[m[1]] = true
	}
	return out
}

// EnvFromMarkdown returns the names in the env column of every Markdown
// table whose header has a cell containing "env" (case-insensitive).
func EnvFromMarkdown(data []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	col := -1
	inTable := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			inTable, col = false, -1
			continue
		}
		cells := splitRow(line)
		if !inTable {
			inTable = true
			col = -1
			for i, cell := range cells {
				if strings.Contains(strings.ToLower(cell), "env") {
					col = i
					break
				}
			}
			continue
		}
		if col < 0 || col >= len(cells) || isSeparator(cells) {
			continue
		}
		for _, tok := range strings.FieldsFunc(cells[col], func(r rune) bool {
			return r == '`' || r == ',' || r == ' ' || r == '/' || r == '<' || r == '>'
		}) {
			if envName.MatchString(tok) {
				names = append(names, tok)
			}
		}
	}
	return names
}

func splitRow(line string) []string {
	line = strings.TrimPrefix(strings.TrimSuffix(line, "|"), "|")
	parts := strings.Split(line, "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

func isSeparator(cells []string) bool {
	for _, c := range cells {
		if strings.Trim(c, ":- ") != "" {
			return false
		}
	}
	return true
}
