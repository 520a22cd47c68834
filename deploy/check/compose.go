package check

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"

	"backinstock/topics/catalog"
)

// composeEnv stands in for the variables a person exports before `docker
// compose up` (API_TOKEN and CLICK_KEYS are required by the file), so
// interpolation succeeds.
var composeEnv = map[string]string{"API_TOKEN": "deploycheck", "CLICK_KEYS": "dc:deploycheck-click-key-of-32-bytes-long", "BACKINSTOCK_TAG": "dev"}

// checkCompose loads deploy/compose/compose.yaml with the compose-spec loader
// (schema validation rejects unknown keys) and checks what the loader
// cannot: pinned images, start-up ordering, the infrastructure's durability
// settings, one fan-out and one notifier per default region, and env names
// the services document.
func (c *checker) checkCompose() {
	path := filepath.Join(c.root, "deploy", "compose", "compose.yaml")
	rel := c.rel(path)
	if _, err := os.Stat(path); err != nil {
		c.add(rel, "", "", "missing: %v", err)
		return
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(path),
		ConfigFiles: []types.ConfigFile{{Filename: path}},
		Environment: composeEnv,
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("backinstock", true)
		o.SkipResolveEnvironment = true
	})
	if err != nil {
		c.add(rel, "", "", "compose-spec loader: %v", err)
		return
	}
	fanout, notifier, gateway := map[string]bool{}, map[string]bool{}, map[string]bool{}
	engagement := false
	brokers := map[string]types.ServiceConfig{}
	for name, s := range p.Services {
		obj := "services." + name
		if s.Image == "" {
			c.add(rel, obj, "image", "missing")
		} else if !imagePinned(s.Image) {
			c.add(rel, obj, "image", "%q is not pinned to a tag or digest", s.Image)
		}
		svc := serviceOfImage(s.Image)
		if s.HealthCheck == nil || s.HealthCheck.Disable {
			if len(s.DependsOn) == 0 && svc != "topics" {
				c.add(rel, obj, "healthcheck", "neither a healthcheck nor depends_on with conditions")
			}
		}
		for dep, d := range s.DependsOn {
			if d.Condition != types.ServiceConditionHealthy && d.Condition != types.ServiceConditionCompletedSuccessfully {
				c.add(rel, obj, "depends_on."+dep+".condition", "%q: wait for service_healthy or service_completed_successfully", d.Condition)
			}
		}
		switch {
		case strings.HasPrefix(s.Image, "apache/kafka:"):
			if v := envOf(s, "KAFKA_PROCESS_ROLES"); !strings.Contains(v, "controller") {
				c.add(rel, obj, "environment.KAFKA_PROCESS_ROLES", "%q: KRaft needs the controller role", v)
			}
			brokers[name] = s
		case strings.HasPrefix(s.Image, "redis:"):
			if !containsSeq(s.Command, "--appendonly", "yes") {
				c.add(rel, obj, "command", "Redis must run with --appendonly yes (the outbox and the wishlist store)")
			}
			c.requireVolume(rel, obj, s, "/data")
		case strings.HasPrefix(s.Image, "nats:"):
			c.checkNATSConf(rel, obj, s)
			c.requireVolume(rel, obj, s, "/data")
		}
		if svc == "" {
			continue
		}
		if s.Build == nil {
			c.add(rel, obj, "build", "backinstock images are built from deploy/docker/Dockerfile")
		} else if s.Build.Target != svc {
			c.add(rel, obj, "build.target", "%q, want %q", s.Build.Target, svc)
		}
		if table, ok := c.env[svc]; ok {
			for _, k := range slices.Sorted(mapKeys(s.Environment)) {
				if !table[k] {
					c.add(rel, obj, "environment."+k, "%s is not in the %s config table", k, svc)
				}
			}
		}
		sub := ""
		if len(s.Command) > 0 {
			sub = s.Command[0]
		}
		switch {
		case svc == "wishlist" && sub == "fanout":
			fanout[envOf(s, "REGION")] = true
		case svc == "notifier" && (sub == "run" || sub == ""):
			notifier[envOf(s, "REGION")] = true
		case svc == "gateway" && (sub == "run" || sub == ""):
			gateway[envOf(s, "REGION")] = true
			c.checkComposeGateway(rel, obj, s, p.Services)
		case svc == "engagement" && (sub == "run" || sub == ""):
			engagement = true
		case svc == "topics":
			if sub != "apply" {
				c.add(rel, obj, "command", "the one-shot job runs `topics apply`")
			}
			if s.Restart != "" && s.Restart != "no" {
				c.add(rel, obj, "restart", "%q: a one-shot job must not restart", s.Restart)
			}
		}
	}
	if len(brokers) != 3 {
		c.add(rel, "services", "", "%d Kafka brokers, want 3 (KRaft)", len(brokers))
	}
	if !engagement {
		c.add(rel, "services", "", "no `engagement run`: the gateways' tracked links lead nowhere")
	}
	c.checkKRaft(rel, brokers)
	for _, r := range catalog.DefaultRegions {
		if !fanout[r] {
			c.add(rel, "services", "", "no `wishlist fanout` with REGION=%s", r)
		}
		if !notifier[r] {
			c.add(rel, "services", "", "no `notifier run` with REGION=%s", r)
		}
		if !gateway[r] {
			c.add(rel, "services", "", "no `gateway run` with REGION=%s", r)
		}
	}
}

// checkComposeGateway checks what a gateway needs to start and deliver:
// its NATS user (the edge runs in operator mode: without credentials it
// cannot connect), the credentials file mounted, and an SMTP server that is
// a service of the file it waits for.
func (c *checker) checkComposeGateway(rel, obj string, s types.ServiceConfig, all types.Services) {
	creds := envOf(s, "NATS_CREDS")
	if creds == "" {
		c.add(rel, obj, "environment.NATS_CREDS", "missing: the edge runs in operator mode (the gateway's user, gateway.creds from `notifier edge-setup`)")
	} else if !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool {
		return v.Target != "" && strings.HasPrefix(creds, strings.TrimSuffix(v.Target, "/")+"/")
	}) {
		c.add(rel, obj, "environment.NATS_CREDS", "%s is on no mounted volume", creds)
	}
	host := envOf(s, "SMTP_HOST")
	smtp, ok := all[host]
	switch {
	case host == "":
		c.add(rel, obj, "environment.SMTP_HOST", "missing (the gateway's default is 127.0.0.1, inside its own container)")
	case !ok:
		// An outside server is fine; only a name of this file is checked further.
	case s.DependsOn[host].Condition != types.ServiceConditionHealthy:
		c.add(rel, obj, "depends_on."+host, "the SMTP server %s must be service_healthy first", host)
	case smtp.HealthCheck == nil || smtp.HealthCheck.Disable:
		c.add(rel, "services."+host, "healthcheck", "missing: the gateways wait for it")
	}
}

// checkNATSConf requires JetStream and websocket, from the flags or the
// mounted configuration file.
func (c *checker) checkNATSConf(rel, obj string, s types.ServiceConfig) {
	conf := strings.Join(s.Command, " ")
	for _, v := range s.Volumes {
		if strings.HasSuffix(v.Source, ".conf") {
			if data, err := os.ReadFile(v.Source); err == nil {
				conf += "\n" + string(data)
			} else {
				c.add(rel, obj, "volumes", "%v", err)
			}
		}
	}
	for _, v := range s.Volumes {
		if !strings.HasSuffix(v.Source, ".conf") {
			continue
		}
		data, err := os.ReadFile(v.Source)
		if err != nil {
			continue // reported above
		}
		// TLS stays optional here: the ports are bound to 127.0.0.1 and
		// the certificates must come from somewhere (deploy/README.md).
		for _, f := range natsConfFindings(string(data), false) {
			field := filepath.Base(v.Source)
			if f.field != "" {
				field += ": " + f.field
			}
			c.add(rel, obj, field, "%s", f.msg)
		}
	}
	if len(s.Volumes) == 0 || !slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return strings.HasSuffix(v.Source, ".conf") }) {
		c.add(rel, obj, "volumes", "no nats.conf mounted: NATS without a configuration lets anyone subscribe to edge.>")
	}
	if !strings.Contains(conf, "jetstream") && !strings.Contains(conf, "-js") {
		c.add(rel, obj, "command", "NATS must run with JetStream")
	}
	if !strings.Contains(conf, "websocket") {
		c.add(rel, obj, "command", "NATS must serve websocket (browsers subscribe over it)")
	}
}

func envOf(s types.ServiceConfig, key string) string {
	if v, ok := s.Environment[key]; ok && v != nil {
		return *v
	}
	return ""
}

func containsSeq(cmd []string, a, b string) bool {
	for i := 0; i+1 < len(cmd); i++ {
		if cmd[i] == a && cmd[i+1] == b {
			return true
		}
	}
	return false
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
