package check

import (
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/conf"
	corev1 "k8s.io/api/core/v1"

	"backinstock/topics/edge"
)

// natsFinding is one problem in a nats.conf: the key path and what is wrong.
type natsFinding struct{ field, msg string }

var (
	natsInclude = regexp.MustCompile(`(?m)^[ \t]*include[ \t]+.*$`)
	natsEnvRef  = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)
)

// natsConfFindings parses a nats.conf with nats-server's own parser and
// reports what would leave the edge open: a client that may subscribe to
// edge.> without credentials (no operator and no authorization, a
// no_auth_user) or a users block that grants edge.> to one user, which
// would read every shopper's notifications with their contact details.
// With requireTLS (Kubernetes) the client and websocket ports must run TLS
// and the cluster routes must authenticate their peers (a route peer sees
// every subscription's messages). Included files are the deployment's own
// generated Secrets (accounts.conf) and are not read; $VARIABLES come from
// the server's environment and stand in as strings.
func natsConfFindings(data string, requireTLS bool) []natsFinding {
	data = natsInclude.ReplaceAllString(data, "")
	data = natsEnvRef.ReplaceAllString(data, "env_$1")
	m, err := conf.Parse(data)
	if err != nil {
		return []natsFinding{{"", fmt.Sprintf("nats-server cannot parse it: %v", err)}}
	}
	m = lowerKeys(m)
	var out []natsFinding
	add := func(field, format string, args ...any) {
		out = append(out, natsFinding{field, fmt.Sprintf(format, args...)})
	}
	operator := m["operator"] != nil || m["operators"] != nil || m["trusted_keys"] != nil || m["trusted"] != nil
	if _, ok := m["no_auth_user"]; ok {
		add("no_auth_user", "a client without credentials connects as this user: anyone who reaches NATS gets its subscriptions")
	}
	authz, _ := m["authorization"].(map[string]any)
	authz = lowerKeys(authz)
	authenticated := operator || (authz != nil && (authz["users"] != nil || authz["token"] != nil || authz["user"] != nil || authz["nkeys"] != nil || authz["auth_callout"] != nil))
	var defaults any
	if authz != nil {
		defaults = authz["default_permissions"]
		checkUsers(authz["users"], "authorization.users", defaults, add)
	}
	if accts, ok := m["accounts"].(map[string]any); ok {
		for name, a := range accts {
			am, _ := a.(map[string]any)
			am = lowerKeys(am)
			if am == nil {
				continue
			}
			if am["users"] != nil {
				authenticated = true
			}
			checkUsers(am["users"], "accounts."+name+".users", defaults, add)
		}
	}
	if !authenticated {
		add("authorization", "no operator, accounts with users or authorization: any client that reaches NATS may subscribe to edge.> (every shopper's notifications); run operator mode (deploy/README.md, \"The edge\")")
	}
	if !requireTLS {
		return out
	}
	if !hasCert(m["tls"]) {
		add("tls", "the client port runs without TLS (tls { cert_file, key_file })")
	}
	ws, _ := m["websocket"].(map[string]any)
	ws = lowerKeys(ws)
	switch {
	case ws == nil:
		add("websocket", "missing (browsers subscribe over it)")
	case ws["no_tls"] == true || !hasCert(ws["tls"]):
		add("websocket.tls", "the websocket port runs without TLS (tls { cert_file, key_file }, no no_tls)")
	}
	if cl, ok := m["cluster"].(map[string]any); ok {
		cl = lowerKeys(cl)
		tls, _ := cl["tls"].(map[string]any)
		tls = lowerKeys(tls)
		if cl["authorization"] == nil && (tls == nil || tls["verify"] != true) {
			add("cluster", "routes accept any peer: one that joins as a route receives edge.>; require mutual TLS (tls { ... verify: true }) or authorization")
		}
	}
	return out
}

func hasCert(v any) bool {
	t, _ := v.(map[string]any)
	t = lowerKeys(t)
	return t != nil && t["cert_file"] != nil && t["key_file"] != nil
}

// lowerKeys: nats-server reads its keys case-insensitively.
func lowerKeys(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[strings.ToLower(k)] = v
	}
	return out
}

// checkUsers reports each user whose subscribe permissions (or, without
// their own, the defaults) let it read every user's edge subjects.
func checkUsers(users any, field string, defaults any, add func(string, string, ...any)) {
	list, _ := users.([]any)
	for i, u := range list {
		um, _ := u.(map[string]any)
		um = lowerKeys(um)
		if um == nil {
			continue
		}
		perms, ok := um["permissions"]
		if !ok {
			perms = defaults
		}
		if subscribesEveryEdgeUser(perms) {
			name, _ := um["user"].(string)
			if name == "" {
				name, _ = um["nkey"].(string)
			}
			add(fmt.Sprintf("%s[%d]", field, i), "user %q may subscribe to edge.>: one credential reads every shopper's notifications (edge users get edge.*.*.<user_id> only, in operator mode)", name)
		}
	}
}

// subscribesEveryEdgeUser: no subscribe restriction, or an allowed subject
// that matches edge.<region>.<channel>.<any user>, not denied as a whole.
func subscribesEveryEdgeUser(perms any) bool {
	pm, _ := perms.(map[string]any)
	pm = lowerKeys(pm)
	if pm == nil {
		return true
	}
	sub, ok := pm["subscribe"]
	if !ok {
		sub, ok = pm["sub"]
	}
	if !ok {
		return true
	}
	var allow, deny []string
	switch v := sub.(type) {
	case string, []any:
		allow = subjects(v)
	case map[string]any:
		v = lowerKeys(v)
		if a, ok := v["allow"]; ok {
			allow = subjects(a)
		} else {
			allow = []string{">"}
		}
		deny = subjects(v["deny"])
	}
	if slices.ContainsFunc(deny, func(s string) bool { return s == ">" || s == edge.AllFilter() }) {
		return false
	}
	return slices.ContainsFunc(allow, readsEveryEdgeUser)
}

func subjects(v any) []string {
	switch t := v.(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// readsEveryEdgeUser: the pattern matches edge.R.C.U for any user U.
func readsEveryEdgeUser(p string) bool {
	for i, tok := range strings.Split(p, ".") {
		switch {
		case tok == ">":
			return true
		case i == 0 && tok != edge.Prefix && tok != "*":
			return false
		case i == 3:
			return tok == "*"
		}
	}
	return false
}

// checkK8sNATS: an overlay runs the region's NATS, and every NATS container
// runs a nats.conf from a ConfigMap of the overlay that keeps the edge
// closed and encrypted.
func (c *checker) checkK8sNATS(r *Rendered, cms map[string]*corev1.ConfigMap) {
	found := false
	check := func(obj string, spec *corev1.PodSpec) {
		for i, ct := range spec.Containers {
			if !isNATSImage(ct.Image) {
				continue
			}
			found = true
			cp := fmt.Sprintf("spec.template.spec.containers[%d]", i)
			confPath := natsConfigArg(ct.Args)
			if confPath == "" {
				confPath = natsConfigArg(ct.Command)
			}
			if confPath == "" {
				c.add(r.Dir, obj, cp+".args", "NATS runs without --config: no authorization, anyone who reaches it may subscribe to edge.>")
				continue
			}
			cm, key := configMapFile(spec, ct, confPath, cms)
			if cm == nil {
				c.add(r.Dir, obj, cp+".args", "%s is not a file of a ConfigMap of the overlay (deploycheck reads the configuration from there)", confPath)
				continue
			}
			for _, f := range natsConfFindings(cm.Data[key], true) {
				field := "data[" + key + "]"
				if f.field != "" {
					field += "." + f.field
				}
				c.add(r.Dir, "ConfigMap/"+cm.Name, field, "%s", f.msg)
			}
		}
	}
	for _, st := range r.StatefulSets {
		check("StatefulSet/"+st.Name, &st.Spec.Template.Spec)
	}
	for _, d := range r.Deployments {
		check("Deployment/"+d.Name, &d.Spec.Template.Spec)
	}
	if !found {
		c.add(r.Dir, "", "", "no NATS server (image nats:...): the overlay ships the region's edge with its configuration (base/nats.yaml)")
	}
}

func isNATSImage(image string) bool {
	return strings.HasPrefix(image, "nats:") || strings.Contains(image, "/nats:")
}

// natsConfigArg is the value of --config/-c in a nats-server command line.
func natsConfigArg(args []string) string {
	for i, a := range args {
		for _, f := range []string{"--config", "-config", "-c"} {
			if a == f && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, f+"="); ok {
				return v
			}
		}
	}
	return ""
}

// configMapFile finds the ConfigMap and key a container sees at file.
func configMapFile(spec *corev1.PodSpec, ct corev1.Container, file string, cms map[string]*corev1.ConfigMap) (*corev1.ConfigMap, string) {
	for _, vm := range ct.VolumeMounts {
		var key string
		switch {
		case vm.SubPath != "" && vm.MountPath == file:
			key = vm.SubPath
		case vm.SubPath == "" && path.Dir(file) == path.Clean(vm.MountPath):
			key = path.Base(file)
		default:
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			for _, it := range v.ConfigMap.Items {
				if it.Path == key {
					key = it.Key
				}
			}
			if cm := cms[v.ConfigMap.Name]; cm != nil {
				if _, ok := cm.Data[key]; ok {
					return cm, key
				}
			}
		}
	}
	return nil, ""
}
