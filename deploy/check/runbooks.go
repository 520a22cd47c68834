package check

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"sigs.k8s.io/yaml"
)

// RunbookDoc is where the runbooks are, relative to the root.
const RunbookDoc = "docs/runbooks.md"

var runbookHeading = regexp.MustCompile(`(?m)^## (\S+)\s*$`)

// checkRunbooks requires every alert to carry a runbook_url that points at
// its own section of docs/runbooks.md, so whoever is paged lands on what to
// check and how to fix it.
func (c *checker) checkRunbooks() {
	file := MonitoringFiles.Alerts
	data, err := os.ReadFile(filepath.Join(c.root, file))
	if err != nil {
		return // checkMonitoring reports it
	}
	var rf RuleFile
	if err := yaml.Unmarshal(data, &rf); err != nil {
		return
	}
	doc, err := os.ReadFile(filepath.Join(c.root, RunbookDoc))
	if err != nil {
		c.add(RunbookDoc, "", "", "missing: %v", err)
		return
	}
	sections := map[string]bool{}
	for _, m := range runbookHeading.FindAllStringSubmatch(string(doc), -1) {
		sections[m[1]] = true
	}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			obj := "group \"" + g.Name + "\" rule \"" + r.Alert + "\""
			want := RunbookDoc + "#" + strings.ToLower(r.Alert)
			switch url := r.Annotations["runbook_url"]; {
			case url == "":
				c.add(file, obj, "annotations.runbook_url", "missing: want %q", want)
			case url != want:
				c.add(file, obj, "annotations.runbook_url", "%q, want %q", url, want)
			case !sections[strings.ToLower(r.Alert)]:
				c.add(RunbookDoc, "", "", "no section \"## %s\" for alert %s", strings.ToLower(r.Alert), r.Alert)
			}
		}
	}
}
