package check

import (
	"encoding/json"
	"fmt"
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"sigs.k8s.io/yaml"
)

// RuleFile is the Prometheus rule file format (rule_files:), restated so it
// decodes strictly without Prometheus' rule manager.
type RuleFile struct {
	Groups []RuleGroup `json:"groups"`
}

// RuleGroup is one group of rules.
type RuleGroup struct {
	Name     string `json:"name"`
	Interval string `json:"interval,omitempty"`
	Limit    int    `json:"limit,omitempty"`
	Rules    []Rule `json:"rules"`
}

// Rule is an alerting or recording rule.
type Rule struct {
	Alert         string            `json:"alert,omitempty"`
	Record        string            `json:"record,omitempty"`
	Expr          string            `json:"expr"`
	For           string            `json:"for,omitempty"`
	KeepFiringFor string            `json:"keep_firing_for,omitempty"`
	Labels        map[string]string `json:"labels,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Query is one PromQL expression found in the dashboard or the rules.
type Query struct {
	Where string // e.g. `panel "Restocks per second" target A`
	Expr  string
}

// grafanaVars replaces Grafana's template variables with values PromQL
// accepts, so dashboard queries can be parsed as Prometheus would see them.
var grafanaVars = regexp.MustCompile(`\$__(rate_interval|interval|range)|\$\{[A-Za-z0-9_:]+\}|\$[A-Za-z_][A-Za-z0-9_]*`)

func substituteGrafana(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		if strings.HasPrefix(v, "$__") {
			return "5m"
		}
		return "x"
	})
}

var labelValues = regexp.MustCompile(`^\s*label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,`)

// DashboardQueries returns the PromQL expressions of a Grafana dashboard:
// every panel target's expr (rows' nested panels included) and the metric of
// label_values() template variables.
func DashboardQueries(data []byte) ([]Query, error) {
	var d struct {
		Title  string            `json:"title"`
		UID    string            `json:"uid"`
		Panels []json.RawMessage `json:"panels"`
		Templ  struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("parse dashboard: %w", err)
	}
	if d.UID == "" || d.Title == "" {
		return nil, fmt.Errorf("dashboard needs a uid and a title")
	}
	var out []Query
	var walk func(raw []json.RawMessage) error
	walk = func(raw []json.RawMessage) error {
		for _, r := range raw {
			var p struct {
				Title   string            `json:"title"`
				Type    string            `json:"type"`
				Panels  []json.RawMessage `json:"panels"`
				Targets []struct {
					RefID string `json:"refId"`
					Expr  string `json:"expr"`
				} `json:"targets"`
			}
			if err := json.Unmarshal(r, &p); err != nil {
				return fmt.Errorf("parse panel: %w", err)
			}
			if p.Type != "row" && len(p.Targets) == 0 {
				return fmt.Errorf("panel %q has no targets", p.Title)
			}
			for _, t := range p.Targets {
				if strings.TrimSpace(t.Expr) == "" {
					return fmt.Errorf("panel %q target %s has no expr", p.Title, t.RefID)
				}
				out = append(out, Query{Where: fmt.Sprintf("panel %q target %s", p.Title, t.RefID), Expr: t.Expr})
			}
			if err := walk(p.Panels); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templ.List {
		if v.Type != "query" {
			continue
		}
		q := string(v.Query)
		var obj struct {
			Query string `json:"query"`
		}
		if json.Unmarshal(v.Query, &obj) == nil && obj.Query != "" {
			q = obj.Query
		} else if s, err := strconv.Unquote(q); err == nil {
			q = s
		}
		if m := labelValues.FindStringSubmatch(q); m != nil {
			out = append(out, Query{Where: fmt.Sprintf("variable %q", v.Name), Expr: m[1]})
		}
	}
	return out, nil
}

// RuleQueries decodes a Prometheus rule file strictly and returns its expressions.
func RuleQueries(data []byte) ([]Query, error) {
	var rf RuleFile
	if err := yaml.UnmarshalStrict(data, &rf); err != nil {
		return nil, fmt.Errorf("decode rule file: %w", err)
	}
	if len(rf.Groups) == 0 {
		return nil, fmt.Errorf("no rule groups")
	}
	var out []Query
	for _, g := range rf.Groups {
		for i, r := range g.Rules {
			name := r.Alert
			if name == "" {
				name = r.Record
			}
			if (r.Alert == "") == (r.Record == "") {
				return nil, fmt.Errorf("group %q rule %d: exactly one of alert and record", g.Name, i)
			}
			out = append(out, Query{Where: fmt.Sprintf("group %q rule %q", g.Name, name), Expr: r.Expr})
		}
	}
	return out, nil
}

// MetricNames parses a PromQL expression and returns the metric names its
// selectors name.
func MetricNames(expr string) ([]string, error) {
	e, err := parser.NewParser(parser.Options{}).ParseExpr(substituteGrafana(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		if name == "" {
			for _, m := range vs.LabelMatchers {
				if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
					name = m.Value
				}
			}
		}
		if name != "" && !slices.Contains(names, name) {
			names = append(names, name)
		}
		return nil
	})
	return names, nil
}

// seriesSuffixes are the series a histogram or summary exports beyond its name.
var seriesSuffixes = []string{"_bucket", "_sum", "_count"}

// Exported tells whether a series name is exported under the given metric
// names (a histogram h exports h_bucket, h_sum and h_count).
func Exported(name string, metrics map[string]bool) bool {
	if metrics[name] || prometheusSeries[name] {
		return true
	}
	for _, s := range seriesSuffixes {
		if base, ok := strings.CutSuffix(name, s); ok && metrics[base] {
			return true
		}
	}
	return false
}

// PrometheusSeries reports whether Prometheus writes name itself for every
// target (no service exports it).
func PrometheusSeries(name string) bool { return prometheusSeries[name] }

// prometheusSeries are the series Prometheus writes itself for every
// target (the down and not-scraped alerts read them).
var prometheusSeries = map[string]bool{"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true}

// MonitoringFiles are the dashboard and rule file, relative to the root.
var MonitoringFiles = struct{ Dashboard, Alerts string }{
	Dashboard: "deploy/grafana/dashboard.json",
	Alerts:    "deploy/grafana/alerts.yaml",
}

// Queries reads the dashboard's and the alert rules' expressions.
func Queries(root string) (dash, rules []Query, err error) {
	data, err := os.ReadFile(filepath.Join(root, MonitoringFiles.Dashboard))
	if err != nil {
		return nil, nil, err
	}
	if dash, err = DashboardQueries(data); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", MonitoringFiles.Dashboard, err)
	}
	data, err = os.ReadFile(filepath.Join(root, MonitoringFiles.Alerts))
	if err != nil {
		return nil, nil, err
	}
	if rules, err = RuleQueries(data); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", MonitoringFiles.Alerts, err)
	}
	return dash, rules, nil
}

func (c *checker) checkMonitoring() {
	for _, f := range []struct {
		file  string
		parse func([]byte) ([]Query, error)
	}{{MonitoringFiles.Dashboard, DashboardQueries}, {MonitoringFiles.Alerts, RuleQueries}} {
		data, err := os.ReadFile(filepath.Join(c.root, f.file))
		if err != nil {
			c.add(f.file, "", "", "%v", err)
			continue
		}
		qs, err := f.parse(data)
		if err != nil {
			c.add(f.file, "", "", "%v", err)
			continue
		}
		for _, q := range qs {
			names, err := MetricNames(q.Expr)
			if err != nil {
				c.add(f.file, q.Where, "expr", "PromQL: %v", err)
				continue
			}
			for _, n := range names {
				if !Exported(n, c.metrics) {
					c.add(f.file, q.Where, "expr", "metric %s is not declared by any service (services/, shared/)", n)
				}
			}
		}
	}
}

var metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// DeclaredMetrics scans the non-test Go sources of services/ and shared/ for
// the metric names they declare: every string literal shaped like a metric
// name, plus "prefix_" + "suffix" concatenations of such literals (the
// notifier builds its names that way). It is a static approximation for
// `make lint`; the test in this package checks the real /metrics output.
func DeclaredMetrics(root string) (map[string]bool, error) {
	lits := map[string]bool{}
	for _, dir := range []string{"services", "shared"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var s scanner.Scanner
			fset := token.NewFileSet()
			s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
			for {
				_, tok, lit := s.Scan()
				if tok == token.EOF {
					break
				}
				if tok != token.STRING {
					continue
				}
				if v, err := strconv.Unquote(lit); err == nil && metricName.MatchString(v) {
					lits[v] = true
				}
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("scan %s for metric names: %w", dir, err)
		}
	}
	out := map[string]bool{}
	for l := range lits {
		out[l] = true
		if strings.HasSuffix(l, "_") {
			for s := range lits {
				out[l+s] = true
			}
		}
	}
	return out, nil
}
