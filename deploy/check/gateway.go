package check

import (
	"fmt"
	"slices"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// Deployments every overlay runs: the region's whole stack.
var Deployments = []string{"inventory", "wishlist-api", "wishlist-fanout", "notifier", "gateway", "engagement"}

// gatewayDrain is what a gateway's stop takes after GATEWAY_STOP_TIMEOUT:
// the receipts' producer flush and the NATS drain (10 s in its Run).
const gatewayDrain = 10 * time.Second

func (c *checker) checkDeploymentsPresent(r *Rendered) {
	for _, name := range Deployments {
		if !slices.ContainsFunc(r.Deployments, func(d *appsv1.Deployment) bool { return d.Name == name }) {
			c.add(r.Dir, "Deployment/"+name, "", "missing: every region runs %v", Deployments)
		}
	}
}

// checkGatewayPod checks what a gateway pod needs beyond every pod's
// checks: its NATS user file set and mounted (the edge runs in operator
// mode), and a grace period longer than its stop (GATEWAY_STOP_TIMEOUT,
// which must be set so it can be compared, plus the drain), or the
// kubelet's SIGKILL cuts sends between the provider's accept and the
// marker, the one window that sends an email twice.
func (c *checker) checkGatewayPod(r *Rendered, obj, path string, spec *corev1.PodSpec, cms map[string]*corev1.ConfigMap) {
	for i, ct := range spec.Containers {
		if serviceOfImage(ct.Image) != "gateway" {
			continue
		}
		cp := fmt.Sprintf("%s.containers[%d]", path, i)
		env := containerEnv(ct, cms)
		creds := env["NATS_CREDS"]
		switch {
		case creds == "":
			c.add(r.Dir, obj, cp+".env", "NATS_CREDS is not set: the edge runs in operator mode (gateway.creds, Secret backinstock-gateway-edge)")
		case !slices.ContainsFunc(ct.VolumeMounts, func(m corev1.VolumeMount) bool {
			return strings.HasPrefix(creds, strings.TrimSuffix(m.MountPath, "/")+"/")
		}):
			c.add(r.Dir, obj, cp+".env", "NATS_CREDS %s is on no volume mount", creds)
		}
		v, ok := env["GATEWAY_STOP_TIMEOUT"]
		if !ok {
			c.add(r.Dir, obj, cp+".env", "GATEWAY_STOP_TIMEOUT is not set: set it so the grace period can be checked against it")
			continue
		}
		stop, err := time.ParseDuration(v)
		if err != nil {
			c.add(r.Dir, obj, cp+".env", "GATEWAY_STOP_TIMEOUT %q is not a duration", v)
			continue
		}
		grace := 30 * time.Second // the Kubernetes default
		if spec.TerminationGracePeriodSeconds != nil {
			grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
		}
		if grace < stop+gatewayDrain {
			c.add(r.Dir, obj, path+".terminationGracePeriodSeconds", "%s is shorter than GATEWAY_STOP_TIMEOUT %s plus the drain (%s): the kubelet would SIGKILL sends in flight", grace, stop, gatewayDrain)
		}
	}
}

// containerEnv is the container's literal environment: its ConfigMaps'
// keys, then its env values (later wins, as in the kubelet). Values from
// Secrets show as present but empty.
func containerEnv(ct corev1.Container, cms map[string]*corev1.ConfigMap) map[string]string {
	out := map[string]string{}
	for _, ef := range ct.EnvFrom {
		if ef.ConfigMapRef == nil || cms[ef.ConfigMapRef.Name] == nil {
			continue
		}
		for k, v := range cms[ef.ConfigMapRef.Name].Data {
			out[ef.Prefix+k] = v
		}
	}
	for _, e := range ct.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			if cm := cms[e.ValueFrom.ConfigMapKeyRef.Name]; cm != nil {
				out[e.Name] = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			}
		default:
			out[e.Name] = e.Value
		}
	}
	return out
}
