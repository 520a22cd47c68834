// Package check validates backinstock's deployment files offline, so a typo
// in a manifest fails `make lint` instead of a rollout: every kustomize
// overlay is built and each rendered object is decoded strictly into its
// Kubernetes API type (an unknown or misspelt field is an error naming its
// path), the compose file is loaded with the compose-spec loader, the
// environment variables set anywhere must be ones the services document, the
// KEDA replica bounds must fit the topic catalogue's partitions, and the
// dashboard's and alert rules' queries must parse and name metrics the code
// declares, and every service's OpenAPI document must load and validate.
package check

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"backinstock/topics/catalog"
)

// Problem is one finding, naming where it is.
type Problem struct {
	// File is the file or directory (relative to the repository root) the
	// problem was found in.
	File string
	// Object names the rendered object or section, e.g. "Deployment/notifier".
	Object string
	// Field is the field path inside the object, e.g. "spec.replicsa".
	Field string
	// Message says what is wrong.
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Object != "" {
		b.WriteString(": " + p.Object)
	}
	if p.Field != "" {
		b.WriteString(": " + p.Field)
	}
	b.WriteString(": " + p.Message)
	return b.String()
}

// Options say where the repository is and, for tests, what to check against.
type Options struct {
	// Root is the repository root (the directory holding go.work).
	Root string
	// Catalog is the topic catalogue; nil loads Root/topics/catalog.yaml.
	Catalog *catalog.Catalog
	// Env maps a service (inventory, wishlist, notifier, topics) to the
	// environment variables it reads; nil reads the config tables of the
	// services' READMEs plus the Kafka keys shared/kafka binds.
	Env EnvTables
	// Metrics is the set of metric names the services export; nil scans the
	// Go sources of services/ and shared/ for the names they declare.
	Metrics map[string]bool
}

// EnvTables maps a service name to the set of environment variables it reads.
type EnvTables map[string]map[string]bool

// Run runs every check and returns the problems found, sorted by file. A
// non-nil error means a check could not run at all (e.g. Root is wrong).
func Run(opts Options) ([]Problem, error) {
	if abs, err := filepath.Abs(opts.Root); err == nil {
		opts.Root = abs
	}
	if _, err := os.Stat(filepath.Join(opts.Root, "deploy")); err != nil {
		return nil, fmt.Errorf("repository root %s: %w", opts.Root, err)
	}
	c := &checker{root: opts.Root, cat: opts.Catalog, env: opts.Env, metrics: opts.Metrics}
	if c.cat == nil {
		data, err := os.ReadFile(filepath.Join(opts.Root, "topics", "catalog.yaml"))
		if err != nil {
			return nil, fmt.Errorf("read topic catalogue: %w", err)
		}
		cat, err := catalog.Load(data)
		if err != nil {
			return nil, fmt.Errorf("topic catalogue: %w", err)
		}
		c.cat = cat
	}
	if c.env == nil {
		env, probs := LoadEnvTables(opts.Root)
		c.env = env
		c.problems = append(c.problems, probs...)
	}
	if c.metrics == nil {
		m, err := DeclaredMetrics(opts.Root)
		if err != nil {
			return nil, err
		}
		c.metrics = m
	}
	c.checkKustomize()
	c.checkCompose()
	c.checkDockerfile()
	c.checkMonitoring()
	c.checkDashboardUnits()
	c.checkRunbooks()
	c.checkOperatorComponent()
	c.checkCodeMap()
	c.checkOpenAPI()
	sort.SliceStable(c.problems, func(i, j int) bool { return c.problems[i].File < c.problems[j].File })
	// The same ConfigMap key is reached through every container loading it.
	seen := map[Problem]bool{}
	out := c.problems[:0]
	for _, p := range c.problems {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

type checker struct {
	root     string
	cat      *catalog.Catalog
	env      EnvTables
	metrics  map[string]bool
	problems []Problem
}

func (c *checker) add(file, object, field, format string, args ...any) {
	c.problems = append(c.problems, Problem{File: file, Object: object, Field: field, Message: fmt.Sprintf(format, args...)})
}

// rel names a path relative to the repository root for messages.
func (c *checker) rel(path string) string {
	if r, err := filepath.Rel(c.root, path); err == nil {
		return filepath.ToSlash(r)
	}
	return path
}

// partitions is the partition count of a catalogue topic, 0 when unknown.
func (c *checker) partitions(topic string) int32 {
	t, ok := c.cat.Lookup(topic)
	if !ok {
		return 0
	}
	return t.Partitions
}

// serviceOfImage maps an image reference to the service whose binary it
// holds: backinstock/<svc>[:tag] or <registry>/.../backinstock/<svc>.
func serviceOfImage(image string) string {
	ref := image
	if i := strings.Index(ref, "@"); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	if len(parts) < 2 || parts[len(parts)-2] != "backinstock" {
		return ""
	}
	return parts[len(parts)-1]
}

// imagePinned reports whether an image reference names a fixed version: a
// digest, or a tag other than latest.
func imagePinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	i := strings.LastIndex(image, ":")
	if i < 0 || i < strings.LastIndex(image, "/") {
		return false
	}
	tag := image[i+1:]
	return tag != "" && tag != "latest"
}
