package check

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// stage is one FROM ... [AS name] section of a Dockerfile.
type stage struct {
	name, base string
	user       string // last USER in the stage
	entrypoint bool
	line       int
}

var argRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?`)

// checkDockerfile reads deploy/docker/Dockerfile statically (no Docker
// engine here): a target per binary, static builds (CGO off), a distroless or
// scratch base pinned to a tag, and a non-root USER in every final image.
func (c *checker) checkDockerfile() {
	path := filepath.Join(c.root, "deploy", "docker", "Dockerfile")
	rel := c.rel(path)
	data, err := os.ReadFile(path)
	if err != nil {
		c.add(rel, "", "", "%v", err)
		return
	}
	args := map[string]string{}
	stages := map[string]*stage{}
	var cur *stage
	cgoOff := false
	lines := strings.Split(strings.ReplaceAll(string(data), "\\\n", " "), "\n")
	for i, raw := range lines {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "ARG":
			if k, v, ok := strings.Cut(rest, "="); ok && cur == nil {
				args[k] = v
			}
		case "FROM":
			f := strings.Fields(rest)
			base := argRef.ReplaceAllStringFunc(f[0], func(ref string) string {
				return args[argRef.FindStringSubmatch(ref)[1]]
			})
			cur = &stage{base: base, line: i + 1}
			if len(f) >= 3 && strings.EqualFold(f[1], "AS") {
				cur.name = f[2]
				stages[cur.name] = cur
			}
		case "USER":
			if cur != nil {
				cur.user = rest
			}
		case "ENTRYPOINT":
			if cur != nil {
				cur.entrypoint = true
			}
		case "ENV":
			if strings.Contains(rest, "CGO_ENABLED=0") {
				cgoOff = true
			}
		}
	}
	if !cgoOff {
		c.add(rel, "", "ENV", "CGO_ENABLED=0 is required for static binaries")
	}
	for _, s := range stages {
		if stages[s.base] == nil && s.base != "scratch" && !imagePinned(s.base) {
			c.add(rel, "stage "+s.name, "FROM", "%q is not pinned to a tag or digest", s.base)
		}
	}
	joined := strings.Join(lines, "\n")
	for _, svc := range Services {
		s := stages[svc]
		if s == nil {
			c.add(rel, "target "+svc, "FROM", "no stage named %s (docker build --target %s)", svc, svc)
			continue
		}
		if pkg := mainPackage(svc); !strings.Contains(joined, pkg) {
			c.add(rel, "target "+svc, "RUN", "no stage builds %s (the target copies a binary nothing compiles)", pkg)
		}
		user, root, entry := "", s, false
		for depth := 0; root != nil && depth < 10; depth++ {
			if user == "" {
				user = root.user
			}
			entry = entry || root.entrypoint
			next := stages[root.base]
			if next == nil {
				break
			}
			root = next
		}
		base := root.base
		if base != "scratch" && !strings.HasPrefix(base, "gcr.io/distroless/static") {
			c.add(rel, "target "+svc, "FROM", "final base %q is neither distroless/static nor scratch", base)
		}
		if u := strings.SplitN(user, ":", 2)[0]; u == "" || u == "root" || u == "0" {
			c.add(rel, "target "+svc, "USER", "the image must run as a non-root user (got %q)", user)
		}
		if !entry {
			c.add(rel, "target "+svc, "ENTRYPOINT", "missing")
		}
	}
}

// mainPackage is the directory of a service's main package.
func mainPackage(svc string) string {
	if svc == "topics" {
		return "topics/cmd/topics"
	}
	return "services/" + svc + "/cmd/" + svc
}
