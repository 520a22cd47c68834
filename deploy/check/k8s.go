package check

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// k8sTypes maps apiVersion/kind to the Go type a rendered object must decode
// into strictly. A kind missing here is reported, so a new kind gets a schema
// before it ships.
var k8sTypes = map[string]func() any{
	"apps/v1/Deployment":                       func() any { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                      func() any { return &appsv1.StatefulSet{} },
	"v1/Service":                               func() any { return &corev1.Service{} },
	"v1/ConfigMap":                             func() any { return &corev1.ConfigMap{} },
	"v1/ServiceAccount":                        func() any { return &corev1.ServiceAccount{} },
	"v1/Namespace":                             func() any { return &corev1.Namespace{} },
	"policy/v1/PodDisruptionBudget":            func() any { return &policyv1.PodDisruptionBudget{} },
	"batch/v1/Job":                             func() any { return &batchv1.Job{} },
	"batch/v1/CronJob":                         func() any { return &batchv1.CronJob{} },
	"autoscaling/v2/HorizontalPodAutoscaler":   func() any { return &autoscalingv2.HorizontalPodAutoscaler{} },
	"networking.k8s.io/v1/NetworkPolicy":       func() any { return &networkingv1.NetworkPolicy{} },
	"rbac.authorization.k8s.io/v1/Role":        func() any { return &rbacv1.Role{} },
	"rbac.authorization.k8s.io/v1/RoleBinding": func() any { return &rbacv1.RoleBinding{} },
	"keda.sh/v1alpha1/ScaledObject":            func() any { return &ScaledObject{} },
	"keda.sh/v1alpha1/TriggerAuthentication":   func() any { return &TriggerAuthentication{} },
	"monitoring.coreos.com/v1/PodMonitor":      func() any { return &PodMonitor{} },
	"monitoring.coreos.com/v1/PrometheusRule":  func() any { return &PrometheusRule{} },
}

// Rendered is one overlay's output, decoded.
type Rendered struct {
	Dir           string
	Region        string
	Deployments   []*appsv1.Deployment
	StatefulSets  []*appsv1.StatefulSet
	Services      []*corev1.Service
	ConfigMaps    []*corev1.ConfigMap
	PDBs          []*policyv1.PodDisruptionBudget
	Jobs          []*batchv1.Job
	ScaledObjects []*ScaledObject
	TriggerAuths  []*TriggerAuthentication
	// Only with the prometheus-operator component.
	PodMonitors     []*PodMonitor
	PrometheusRules []*PrometheusRule
}

// consumerGroups maps a Deployment to the prefix of its consumer group
// (<prefix>.<region>) and the topics it reads, so the KEDA triggers can be
// checked against what the service really consumes.
func consumerTopics(deployment, region string) (group string, topics []string) {
	switch deployment {
	case "wishlist-fanout":
		return "fanout." + region, []string{catalog.Restock}
	case "notifier":
		for _, ch := range events.ChannelNames() {
			topics = append(topics, catalog.Notify(region, ch))
		}
		return "notifier." + region, topics
	}
	return "", nil
}

func (c *checker) checkKustomize() {
	k8sDir := filepath.Join(c.root, "deploy", "k8s")
	overlays, err := filepath.Glob(filepath.Join(k8sDir, "overlays", "*"))
	if err != nil || len(overlays) == 0 {
		c.add(c.rel(k8sDir), "", "", "no overlays under overlays/")
		return
	}
	seen := map[string]bool{}
	for _, dir := range overlays {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			continue
		}
		r := c.buildOverlay(dir)
		if r == nil {
			continue
		}
		seen[r.Region] = true
		c.checkRendered(r)
	}
	for _, region := range catalog.DefaultRegions {
		if !seen[region] {
			c.add(c.rel(filepath.Join(k8sDir, "overlays")), "", "", "no overlay sets REGION=%s (one overlay per default region)", region)
		}
	}
}

var strictField = regexp.MustCompile(`(unknown|duplicate) field "([^"]+)"`)

// buildOverlay runs kustomize on dir and decodes every object strictly.
func (c *checker) buildOverlay(dir string) *Rendered {
	rel := c.rel(dir)
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		c.add(rel, "", "", "kustomize build: %v", err)
		return nil
	}
	r := &Rendered{Dir: rel}
	for _, res := range m.Resources() {
		gvk := res.GetGvk()
		key := gvk.Version + "/" + gvk.Kind
		if gvk.Group != "" {
			key = gvk.Group + "/" + key
		}
		obj := fmt.Sprintf("%s/%s", gvk.Kind, res.GetName())
		if gvk.Kind == "Secret" {
			c.add(rel, obj, "", "the manifests must not carry secrets: reference a Secret provided out of band (secretKeyRef)")
			continue
		}
		newT, ok := k8sTypes[key]
		if !ok {
			c.add(rel, obj, "apiVersion/kind", "%s is not a kind deploycheck knows; add its Go type to k8sTypes", key)
			continue
		}
		data, err := res.MarshalJSON()
		if err != nil {
			c.add(rel, obj, "", "render: %v", err)
			continue
		}
		v := newT()
		strictErrs, err := sigsjson.UnmarshalStrict(data, v)
		if err != nil {
			c.add(rel, obj, "", "decode into %s: %v", key, err)
			continue
		}
		bad := false
		for _, se := range strictErrs {
			bad = true
			field := ""
			if mm := strictField.FindStringSubmatch(se.Error()); mm != nil {
				field = mm[2]
			}
			where := c.locateKey(filepath.Join(c.root, "deploy", "k8s"), field)
			msg := se.Error()
			if where != "" {
				msg += " (" + where + ")"
			}
			c.add(rel, obj, field, "%s", msg)
		}
		if bad {
			continue
		}
		switch t := v.(type) {
		case *appsv1.Deployment:
			r.Deployments = append(r.Deployments, t)
		case *appsv1.StatefulSet:
			r.StatefulSets = append(r.StatefulSets, t)
		case *corev1.Service:
			r.Services = append(r.Services, t)
		case *corev1.ConfigMap:
			r.ConfigMaps = append(r.ConfigMaps, t)
			if isSharedConfigMap(t.Name) {
				r.Region = t.Data["REGION"]
			}
		case *policyv1.PodDisruptionBudget:
			r.PDBs = append(r.PDBs, t)
		case *batchv1.Job:
			r.Jobs = append(r.Jobs, t)
		case *ScaledObject:
			r.ScaledObjects = append(r.ScaledObjects, t)
		case *TriggerAuthentication:
			r.TriggerAuths = append(r.TriggerAuths, t)
		case *PodMonitor:
			r.PodMonitors = append(r.PodMonitors, t)
		case *PrometheusRule:
			r.PrometheusRules = append(r.PrometheusRules, t)
		}
	}
	return r
}

// locateKey finds the manifest line that sets the last element of a field
// path, so a strict-decoding error points at a file a person can open.
func (c *checker) locateKey(dir, field string) string {
	if field == "" {
		return ""
	}
	parts := strings.Split(field, ".")
	key := parts[len(parts)-1]
	if i := strings.Index(key, "["); i >= 0 {
		key = key[:i]
	}
	re := regexp.MustCompile(`^\s*(- )?"?` + regexp.QuoteMeta(key) + `"?\s*:`)
	var found string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return nil
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			if re.MatchString(sc.Text()) {
				found = fmt.Sprintf("%s:%d", c.rel(path), n)
				return filepath.SkipAll
			}
		}
		return nil
	})
	return found
}

func (c *checker) checkRendered(r *Rendered) {
	if r.Region == "" {
		c.add(r.Dir, "ConfigMap/backinstock", "data.REGION", "the overlay sets no REGION")
	} else if !slices.Contains(c.cat.Regions, r.Region) {
		c.add(r.Dir, "ConfigMap/backinstock", "data.REGION", "%q is not a region of the topic catalogue %v", r.Region, c.cat.Regions)
	} else if filepath.Base(r.Dir) != r.Region {
		c.add(r.Dir, "ConfigMap/backinstock", "data.REGION", "%q does not match the overlay directory %q", r.Region, filepath.Base(r.Dir))
	}
	cms := map[string]*corev1.ConfigMap{}
	for _, cm := range r.ConfigMaps {
		cms[cm.Name] = cm
		if v, ok := cm.Data["RATE_LIMITS"]; ok {
			if err := checkRateLimits(v); err != nil {
				c.add(r.Dir, "ConfigMap/"+cm.Name, "data.RATE_LIMITS", "%v", err)
			}
		}
	}
	for _, d := range r.Deployments {
		obj := "Deployment/" + d.Name
		c.checkPod(r, obj, "spec.template.spec", &d.Spec.Template.Spec, cms, true)
		c.checkGatewayPod(r, obj, "spec.template.spec", &d.Spec.Template.Spec, cms)
		if d.Spec.Selector == nil {
			c.add(r.Dir, obj, "spec.selector", "missing")
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
		if err != nil {
			c.add(r.Dir, obj, "spec.selector", "%v", err)
			continue
		}
		podLabels := labels.Set(d.Spec.Template.Labels)
		if !sel.Matches(podLabels) {
			c.add(r.Dir, obj, "spec.selector", "does not match the pod template's labels")
		}
		if !c.hasPDB(r, podLabels) {
			c.add(r.Dir, obj, "", "no PodDisruptionBudget selects its pods")
		}
		if _, topics := consumerTopics(d.Name, r.Region); len(topics) > 0 && d.Spec.Replicas != nil {
			for _, t := range topics {
				if p := c.partitions(t); p > 0 && *d.Spec.Replicas > p {
					c.add(r.Dir, obj, "spec.replicas", "%d replicas exceed the %d partitions of %s: the extra consumers would sit idle", *d.Spec.Replicas, p, t)
				}
			}
		}
	}
	for _, j := range r.Jobs {
		c.checkPod(r, "Job/"+j.Name, "spec.template.spec", &j.Spec.Template.Spec, cms, false)
	}
	for _, s := range r.Services {
		obj := "Service/" + s.Name
		if !c.selectsDeployment(r, s.Spec.Selector) {
			c.add(r.Dir, obj, "spec.selector", "selects no Deployment's or StatefulSet's pods")
		}
	}
	for _, p := range r.PDBs {
		if p.Spec.Selector == nil {
			c.add(r.Dir, "PodDisruptionBudget/"+p.Name, "spec.selector", "missing")
		}
	}
	c.checkDeploymentsPresent(r)
	c.checkScaledObjects(r)
	c.checkK8sNATS(r, cms)
}

func (c *checker) hasPDB(r *Rendered, podLabels labels.Set) bool {
	for _, p := range r.PDBs {
		if p.Spec.Selector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(podLabels) {
			return true
		}
	}
	return false
}

func (c *checker) selectsDeployment(r *Rendered, selector map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	sel := labels.SelectorFromSet(selector)
	for _, d := range r.Deployments {
		if sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			return true
		}
	}
	for _, st := range r.StatefulSets {
		if sel.Matches(labels.Set(st.Spec.Template.Labels)) {
			return true
		}
	}
	return false
}

// checkPod checks the containers of a pod template: pinned backinstock
// images, probes on /healthz and /readyz (long-running pods), resources,
// non-root, and environment variables the service documents.
func (c *checker) checkPod(r *Rendered, obj, path string, spec *corev1.PodSpec, cms map[string]*corev1.ConfigMap, longRunning bool) {
	podNonRoot := spec.SecurityContext != nil && spec.SecurityContext.RunAsNonRoot != nil && *spec.SecurityContext.RunAsNonRoot
	for i, ct := range spec.Containers {
		cp := fmt.Sprintf("%s.containers[%d]", path, i)
		if !imagePinned(ct.Image) {
			c.add(r.Dir, obj, cp+".image", "%q is not pinned to a tag or digest", ct.Image)
		}
		svc := serviceOfImage(ct.Image)
		if svc == "" {
			c.add(r.Dir, obj, cp+".image", "%q is not a backinstock image (backinstock/<service>)", ct.Image)
		}
		nonRoot := podNonRoot || (ct.SecurityContext != nil && ct.SecurityContext.RunAsNonRoot != nil && *ct.SecurityContext.RunAsNonRoot)
		if !nonRoot {
			c.add(r.Dir, obj, cp+".securityContext.runAsNonRoot", "must be true (pod or container)")
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := ct.Resources.Requests[res]; !ok {
				c.add(r.Dir, obj, cp+".resources.requests."+string(res), "missing")
			}
			if _, ok := ct.Resources.Limits[res]; !ok {
				c.add(r.Dir, obj, cp+".resources.limits."+string(res), "missing")
			}
		}
		if longRunning {
			c.checkProbe(r, obj, cp+".livenessProbe", ct.LivenessProbe, "/healthz", ct.Ports)
			c.checkProbe(r, obj, cp+".readinessProbe", ct.ReadinessProbe, "/readyz", ct.Ports)
		}
		if svc == "" {
			continue
		}
		table, ok := c.env[svc]
		if !ok {
			continue // its README's table is missing, reported once already
		}
		for j, e := range ct.Env {
			if !table[e.Name] {
				c.add(r.Dir, obj, fmt.Sprintf("%s.env[%d].name", cp, j), "%s is not in the %s config table", e.Name, svc)
			}
			if e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil {
				if cms[e.ValueFrom.ConfigMapKeyRef.Name] == nil {
					c.add(r.Dir, obj, fmt.Sprintf("%s.env[%d].valueFrom.configMapKeyRef.name", cp, j), "no ConfigMap %q in the overlay", e.ValueFrom.ConfigMapKeyRef.Name)
				}
			}
		}
		for j, ef := range ct.EnvFrom {
			if ef.SecretRef != nil {
				c.add(r.Dir, obj, fmt.Sprintf("%s.envFrom[%d].secretRef", cp, j), "reference secrets key by key (env[].valueFrom.secretKeyRef) so every name is checked")
			}
			if ef.ConfigMapRef == nil {
				continue
			}
			cm := cms[ef.ConfigMapRef.Name]
			if cm == nil {
				c.add(r.Dir, obj, fmt.Sprintf("%s.envFrom[%d].configMapRef.name", cp, j), "no ConfigMap %q in the overlay", ef.ConfigMapRef.Name)
				continue
			}
			for key := range cm.Data {
				switch {
				case c.knownEnv(svc, cm.Name, key):
				case isSharedConfigMap(cm.Name):
					c.add(r.Dir, "ConfigMap/"+cm.Name, "data."+key, "%s is in no service's config table", key)
				default:
					c.add(r.Dir, "ConfigMap/"+cm.Name, "data."+key, "%s is not in the %s config table", key, svc)
				}
			}
		}
	}
}

var sharedConfigMap = regexp.MustCompile(`^backinstock(-[a-z0-9]{10})?$`)

// isSharedConfigMap tells the ConfigMap every process loads (named
// backinstock, plus kustomize's content hash) from a service's own.
func isSharedConfigMap(name string) bool { return sharedConfigMap.MatchString(name) }

// knownEnv: keys of the shared ConfigMap may be read by any service, so they
// must be known to at least one; other ConfigMaps belong to the service
// loading them.
func (c *checker) knownEnv(svc, cm, key string) bool {
	if isSharedConfigMap(cm) {
		for _, t := range c.env {
			if t[key] {
				return true
			}
		}
		return false
	}
	return c.env[svc][key]
}

func (c *checker) checkProbe(r *Rendered, obj, field string, p *corev1.Probe, path string, ports []corev1.ContainerPort) {
	if p == nil {
		c.add(r.Dir, obj, field, "missing (HTTP GET %s)", path)
		return
	}
	if p.HTTPGet == nil || p.HTTPGet.Path != path {
		c.add(r.Dir, obj, field+".httpGet.path", "must probe %s", path)
		return
	}
	if name := p.HTTPGet.Port.StrVal; name != "" {
		if !slices.ContainsFunc(ports, func(cp corev1.ContainerPort) bool { return cp.Name == name }) {
			c.add(r.Dir, obj, field+".httpGet.port", "no container port named %q", name)
		}
	}
}

func (c *checker) checkScaledObjects(r *Rendered) {
	deps := map[string]*appsv1.Deployment{}
	for _, d := range r.Deployments {
		deps[d.Name] = d
	}
	scaled := map[string]bool{}
	for _, so := range r.ScaledObjects {
		obj := "ScaledObject/" + so.Name
		s := so.Spec
		if s.ScaleTargetRef == nil || deps[s.ScaleTargetRef.Name] == nil {
			c.add(r.Dir, obj, "spec.scaleTargetRef.name", "names no Deployment of the overlay")
			continue
		}
		target := s.ScaleTargetRef.Name
		scaled[target] = true
		if s.MaxReplicaCount == nil {
			c.add(r.Dir, obj, "spec.maxReplicaCount", "must be set (KEDA's default of 100 exceeds any partition count)")
		}
		if s.MinReplicaCount != nil && s.MaxReplicaCount != nil && *s.MinReplicaCount > *s.MaxReplicaCount {
			c.add(r.Dir, obj, "spec.minReplicaCount", "%d is above maxReplicaCount %d", *s.MinReplicaCount, *s.MaxReplicaCount)
		}
		group, want := consumerTopics(target, r.Region)
		got := map[string]bool{}
		for i, tr := range s.Triggers {
			tp := fmt.Sprintf("spec.triggers[%d]", i)
			if tr.Type != "kafka" {
				c.add(r.Dir, obj, tp+".type", "%q: the consumers scale on Kafka lag (type kafka)", tr.Type)
				continue
			}
			c.checkTriggerAuth(r, obj, tp, tr)
			for k := range tr.Metadata {
				if !kafkaTriggerKeys[k] {
					c.add(r.Dir, obj, tp+".metadata."+k, "not a KEDA Kafka scaler setting")
				}
			}
			if tr.Metadata["bootstrapServers"] == "" && tr.Metadata["bootstrapServersFromEnv"] == "" {
				c.add(r.Dir, obj, tp+".metadata.bootstrapServers", "missing (or bootstrapServersFromEnv)")
			}
			if v := tr.Metadata["lagThreshold"]; v != "" {
				if n, err := strconv.Atoi(v); err != nil || n <= 0 {
					c.add(r.Dir, obj, tp+".metadata.lagThreshold", "%q is not a positive integer", v)
				}
			}
			if group != "" && tr.Metadata["consumerGroup"] != group {
				c.add(r.Dir, obj, tp+".metadata.consumerGroup", "%q, but %s in %s consumes as group %q", tr.Metadata["consumerGroup"], target, r.Region, group)
			}
			topic := tr.Metadata["topic"]
			if topic == "" {
				c.add(r.Dir, obj, tp+".metadata.topic", "missing: name the topic so the replica bound is the topic's partitions")
				continue
			}
			got[topic] = true
			p := c.partitions(topic)
			if p == 0 {
				c.add(r.Dir, obj, tp+".metadata.topic", "%q is not in the topic catalogue", topic)
				continue
			}
			if s.MaxReplicaCount != nil && *s.MaxReplicaCount > p {
				c.add(r.Dir, obj, "spec.maxReplicaCount", "%d exceeds the %d partitions of %s: partitions bound a group's consumers", *s.MaxReplicaCount, p, topic)
			}
		}
		for _, t := range want {
			if !got[t] {
				c.add(r.Dir, obj, "spec.triggers", "no trigger on %s, which %s consumes", t, target)
			}
		}
	}
	for _, name := range []string{"wishlist-fanout", "notifier"} {
		if deps[name] != nil && !scaled[name] {
			c.add(r.Dir, "Deployment/"+name, "", "no ScaledObject scales it on consumer lag")
		}
	}
}

// checkRateLimits checks the notifier's RATE_LIMITS syntax
// ("channel=per-second[:burst],...") so a typo in an overlay fails lint
// rather than the notifier's start-up in one region.
func checkRateLimits(v string) error {
	for _, item := range strings.Split(v, ",") {
		ch, rest, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return fmt.Errorf("%q is not channel=rate[:burst]", item)
		}
		if !events.ValidChannel(ch) {
			return fmt.Errorf("%q is not a channel %v", ch, events.ChannelNames())
		}
		rate, burst, hasBurst := strings.Cut(rest, ":")
		if f, err := strconv.ParseFloat(rate, 64); err != nil || f <= 0 {
			return fmt.Errorf("%s: rate %q is not a positive number", ch, rate)
		}
		if hasBurst {
			if n, err := strconv.Atoi(burst); err != nil || n <= 0 {
				return fmt.Errorf("%s: burst %q is not a positive integer", ch, burst)
			}
		}
	}
	return nil
}
