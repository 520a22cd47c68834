package app_test

import (
	"encoding/json"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }

// counter is the value of the counter name whose label values are values
// (ordered by label name, as Gather sorts them: channel before region); 0
// when the series does not exist.
func counter(t *testing.T, reg *prometheus.Registry, name string, values ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(values) {
				continue
			}
			for i, l := range m.GetLabel() {
				if l.GetValue() != values[i] {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
