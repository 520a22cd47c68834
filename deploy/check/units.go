package check

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// checkDashboardUnits requires each dashboard series to be plotted in a unit
// that fits what its query returns: a rate in a per-second unit, a duration
// (a _seconds metric or a quantile of one) in a time unit, and a count or a
// gauge in a plain number. A series gets its panel's unit unless an override
// for its refId sets another, so a backlog count drawn on a panel in seconds,
// or a gauge on a panel in ops/s, is an error naming both.
func (c *checker) checkDashboardUnits() {
	file := MonitoringFiles.Dashboard
	data, err := os.ReadFile(filepath.Join(c.root, file))
	if err != nil {
		return // checkMonitoring reports it
	}
	var d struct {
		Panels []dashPanel `json:"panels"`
	}
	if err := json.Unmarshal(data, &d); err != nil {
		return
	}
	var walk func([]dashPanel)
	walk = func(ps []dashPanel) {
		for _, p := range ps {
			walk(p.Panels)
			for _, t := range p.Targets {
				unit := p.unitOf(t.RefID)
				kind := seriesKind(t.Expr)
				if !unitFits(kind, unit) {
					c.add(file, fmt.Sprintf("panel %q", p.Title), "targets."+t.RefID, "%s returns a %s but is plotted in unit %q (set the panel's unit or an override for refId %s)", t.Expr, kind, unit, t.RefID)
				}
			}
		}
	}
	walk(d.Panels)
}

type dashPanel struct {
	Title       string      `json:"title"`
	Panels      []dashPanel `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options any    `json:"options"`
			} `json:"matcher"`
			Properties []struct {
				ID    string `json:"id"`
				Value any    `json:"value"`
			} `json:"properties"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func (p dashPanel) unitOf(refID string) string {
	unit := p.FieldConfig.Defaults.Unit
	for _, o := range p.FieldConfig.Overrides {
		if o.Matcher.ID != "byFrameRefID" || o.Matcher.Options != refID {
			continue
		}
		for _, prop := range o.Properties {
			if v, ok := prop.Value.(string); ok && prop.ID == "unit" {
				unit = v
			}
		}
	}
	return unit
}

var (
	rateCall    = regexp.MustCompile(`\b(i?rate|deriv)\(`)
	secondsName = regexp.MustCompile(`_seconds(_bucket|_sum)?\b`)
)

// seriesKind is what a query returns: "rate", "duration" or "number".
func seriesKind(expr string) string {
	switch {
	case strings.Contains(expr, "histogram_quantile(") && secondsName.MatchString(expr):
		return "duration"
	case rateCall.MatchString(expr):
		return "rate"
	case secondsName.MatchString(expr):
		return "duration"
	}
	return "number"
}

func unitFits(kind, unit string) bool {
	switch kind {
	case "rate":
		return strings.HasSuffix(unit, "ps") || strings.HasSuffix(unit, "/s") || unit == "hertz"
	case "duration":
		return unit == "s" || unit == "ms" || unit == "µs" || unit == "dtdurations" || unit == "dtdurationms"
	}
	return unit == "" || unit == "short" || unit == "none" || unit == "percentunit"
}
