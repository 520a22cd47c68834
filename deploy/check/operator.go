package check

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// PodMonitor mirrors the fields of the Prometheus Operator's
// monitoring.coreos.com/v1 PodMonitor that the component sets; restated
// like the KEDA types (the operator's module pins its own Kubernetes), so
// strict decoding rejects a misspelt field.
type PodMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              struct {
		JobLabel            string               `json:"jobLabel,omitempty"`
		Selector            metav1.LabelSelector `json:"selector"`
		PodMetricsEndpoints []struct {
			Port     string `json:"port,omitempty"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
			Scheme   string `json:"scheme,omitempty"`
		} `json:"podMetricsEndpoints"`
	} `json:"spec"`
}

// PrometheusRule mirrors monitoring.coreos.com/v1 PrometheusRule: its spec
// is a rule file.
type PrometheusRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RuleFile `json:"spec"`
}

// OperatorComponent is the kustomize component for Prometheus Operator
// clusters, relative to the root.
const OperatorComponent = "deploy/k8s/components/prometheus-operator"

// PrometheusRuleFile is the component's rule resource, generated from the
// alert rules.
const PrometheusRuleFile = OperatorComponent + "/prometheusrule.yaml"

// PrometheusRuleYAML renders the alert rules file as the component's
// PrometheusRule.
func PrometheusRuleYAML(alerts []byte) ([]byte, error) {
	var rf RuleFile
	if err := yaml.UnmarshalStrict(alerts, &rf); err != nil {
		return nil, fmt.Errorf("decode %s: %w", MonitoringFiles.Alerts, err)
	}
	pr := PrometheusRule{TypeMeta: metav1.TypeMeta{APIVersion: "monitoring.coreos.com/v1", Kind: "PrometheusRule"}, Spec: rf}
	pr.Name = "backinstock"
	out, err := yaml.Marshal(pr)
	if err != nil {
		return nil, err
	}
	head := "# Generated from " + MonitoringFiles.Alerts + " by `make rules`; do not edit.\n"
	// ObjectMeta's zero creationTimestamp marshals as null; drop it.
	out = bytes.ReplaceAll(out, []byte("  creationTimestamp: null\n"), nil)
	return append([]byte(head), out...), nil
}

// checkOperatorComponent builds every overlay with the component added, so
// its objects are decoded strictly like the rest, and requires the
// PrometheusRule to hold exactly the alert rules and the PodMonitor to
// select every Deployment's pods on a port they have.
func (c *checker) checkOperatorComponent() {
	comp := filepath.Join(c.root, OperatorComponent)
	if _, err := os.Stat(comp); err != nil {
		c.add(OperatorComponent, "", "", "missing: %v", err)
		return
	}
	alerts, err := os.ReadFile(filepath.Join(c.root, MonitoringFiles.Alerts))
	if err != nil {
		return // checkMonitoring reports it
	}
	var want RuleFile
	if err := yaml.Unmarshal(alerts, &want); err != nil {
		return
	}
	where := func(ov string) string { return OperatorComponent + " in " + c.rel(ov) }
	overlays, _ := filepath.Glob(filepath.Join(c.root, "deploy", "k8s", "overlays", "*"))
	for _, ov := range overlays {
		// kustomize takes only relative paths to other kustomizations, so
		// the combining one lives beside the overlays for the build.
		k8s := filepath.Join(c.root, "deploy", "k8s")
		tmp, err := os.MkdirTemp(k8s, ".deploycheck-")
		if err != nil {
			c.add(OperatorComponent, "", "", "%v", err)
			return
		}
		k := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../overlays/%s\ncomponents:\n  - ../components/%s\n", filepath.Base(ov), filepath.Base(comp))
		if err := os.WriteFile(filepath.Join(tmp, "kustomization.yaml"), []byte(k), 0o644); err != nil {
			c.add(OperatorComponent, "", "", "%v", err)
			os.RemoveAll(tmp)
			return
		}
		r := c.buildOverlay(tmp)
		os.RemoveAll(tmp)
		if r != nil {
			r.Dir = where(ov)
		}
		if r == nil {
			continue
		}
		at := where(ov)
		if len(r.PrometheusRules) != 1 || len(r.PodMonitors) != 1 {
			c.add(at, "", "", "renders %d PrometheusRule and %d PodMonitor objects, want one each", len(r.PrometheusRules), len(r.PodMonitors))
			continue
		}
		if !reflect.DeepEqual(r.PrometheusRules[0].Spec, want) {
			c.add(PrometheusRuleFile, "PrometheusRule/"+r.PrometheusRules[0].Name, "spec", "differs from %s: run `make rules`", MonitoringFiles.Alerts)
		}
		pm := r.PodMonitors[0]
		sel, err := metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
		if err != nil {
			c.add(at, "PodMonitor/"+pm.Name, "spec.selector", "%v", err)
			continue
		}
		for _, d := range r.Deployments {
			if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
				c.add(at, "PodMonitor/"+pm.Name, "spec.selector", "does not select Deployment/%s's pods: its metrics go unscraped", d.Name)
				continue
			}
			for _, ep := range pm.Spec.PodMetricsEndpoints {
				found := false
				for _, ct := range d.Spec.Template.Spec.Containers {
					for _, p := range ct.Ports {
						found = found || p.Name == ep.Port
					}
				}
				if !found {
					c.add(at, "PodMonitor/"+pm.Name, "spec.podMetricsEndpoints.port", "Deployment/%s's pods have no port named %q", d.Name, ep.Port)
				}
			}
		}
	}
}
