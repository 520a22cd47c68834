package topics_test

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"backinstock/topics"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

type asyncAPIDoc struct {
	AsyncAPI string `yaml:"asyncapi"`
	Channels map[string]struct {
		Address string `yaml:"address"`
		Servers []struct {
			Ref string `yaml:"$ref"`
		} `yaml:"servers"`
		Parameters map[string]any `yaml:"parameters"`
		Bindings   struct {
			Kafka *struct {
				Topic              string         `yaml:"topic"`
				Partitions         int32          `yaml:"partitions"`
				Replicas           int16          `yaml:"replicas"`
				TopicConfiguration map[string]any `yaml:"topicConfiguration"`
			} `yaml:"kafka"`
		} `yaml:"bindings"`
	} `yaml:"channels"`
	Components struct {
		Parameters map[string]struct {
			Enum []string `yaml:"enum"`
		} `yaml:"parameters"`
	} `yaml:"components"`
}

func loadAsyncAPI(t *testing.T) (asyncAPIDoc, any) {
	t.Helper()
	var doc asyncAPIDoc
	if err := yaml.Unmarshal(topics.AsyncAPIYAML, &doc); err != nil {
		t.Fatalf("asyncapi.yaml: %v", err)
	}
	var raw any
	if err := yaml.Unmarshal(topics.AsyncAPIYAML, &raw); err != nil {
		t.Fatal(err)
	}
	return doc, raw
}

// expandAddress replaces each {param} having an enum by each of its values.
func expandAddress(addr string, params map[string][]string) []string {
	out := []string{addr}
	for name, values := range params {
		ph := "{" + name + "}"
		if !strings.Contains(addr, ph) || len(values) == 0 {
			continue
		}
		var next []string
		for _, a := range out {
			for _, v := range values {
				next = append(next, strings.ReplaceAll(a, ph, v))
			}
		}
		out = next
	}
	return out
}

func TestAsyncAPIDescribesEveryCatalogueTopic(t *testing.T) {
	doc, _ := loadAsyncAPI(t)
	if !strings.HasPrefix(doc.AsyncAPI, "3.") {
		t.Errorf("asyncapi version %q, want 3.x", doc.AsyncAPI)
	}
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	enums := map[string][]string{}
	for name, p := range doc.Components.Parameters {
		enums[name] = p.Enum
	}
	if !slices.Equal(enums["region"], catalog.DefaultRegions) || !slices.Equal(enums["channel"], events.ChannelNames()) {
		t.Errorf("parameter enums region %v, channel %v; want %v and %v", enums["region"], enums["channel"], catalog.DefaultRegions, events.ChannelNames())
	}

	described := map[string]bool{}
	var edge, webhook bool
	for id, ch := range doc.Channels {
		for p := range ch.Parameters {
			if !strings.Contains(ch.Address, "{"+p+"}") {
				t.Errorf("channel %s: parameter %s is not in the address %s", id, p, ch.Address)
			}
		}
		if ch.Address == "edge.{region}.{channel}.{user_id}" {
			edge = true
			continue
		}
		if len(ch.Servers) == 1 && ch.Servers[0].Ref == "#/servers/shop" {
			// The webhook: HTTP to a shop's endpoint, no topic.
			webhook = true
			continue
		}
		for _, addr := range expandAddress(ch.Address, enums) {
			described[addr] = true
			tp, ok := cat.Lookup(addr)
			if !ok {
				t.Errorf("channel %s: %s is not in the catalogue", id, addr)
				continue
			}
			k := ch.Bindings.Kafka
			if k == nil {
				t.Errorf("channel %s: no kafka binding", id)
				continue
			}
			if k.Partitions != tp.Partitions || k.Replicas != tp.ReplicationFactor {
				t.Errorf("channel %s: binding says %d partitions, %d replicas; the catalogue %d, %d", id, k.Partitions, k.Replicas, tp.Partitions, tp.ReplicationFactor)
			}
			if k.Topic != "" && k.Topic != addr {
				t.Errorf("channel %s: binding topic %s, address %s", id, k.Topic, addr)
			}
			if got := k.TopicConfiguration["cleanup.policy"]; got != nil {
				var parts []string
				for _, p := range got.([]any) {
					parts = append(parts, p.(string))
				}
				if strings.Join(parts, ",") != tp.Configs["cleanup.policy"] {
					t.Errorf("channel %s: cleanup.policy %v, the catalogue %s", id, parts, tp.Configs["cleanup.policy"])
				}
			}
		}
	}
	for _, name := range cat.Names() {
		if !described[name] {
			t.Errorf("catalogue topic %s has no AsyncAPI channel", name)
		}
	}
	if !edge {
		t.Error("the NATS edge channel edge.{region}.{channel}.{user_id} is missing")
	}
	if !webhook {
		t.Error("the webhook channel (server shop) is missing")
	}
}

// TestAsyncAPIReferencesResolve follows every $ref: local ones must point at
// something in the document, file ones at a schema in schemas/.
func TestAsyncAPIReferencesResolve(t *testing.T) {
	_, raw := loadAsyncAPI(t)
	var refs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, val := range v {
				if s, ok := val.(string); ok && k == "$ref" {
					refs = append(refs, s)
				}
				walk(val)
			}
		case []any:
			for _, val := range v {
				walk(val)
			}
		}
	}
	walk(raw)
	if len(refs) == 0 {
		t.Fatal("no $ref found")
	}
	usedSchemas := map[string]bool{}
	for _, ref := range refs {
		if file, ok := strings.CutPrefix(ref, "./"); ok {
			if _, err := fs.Stat(topics.Schemas, file); err != nil {
				t.Errorf("$ref %s: %v", ref, err)
			}
			usedSchemas[file] = true
			continue
		}
		path, ok := strings.CutPrefix(ref, "#/")
		if !ok {
			t.Errorf("$ref %s is neither local nor a schema file", ref)
			continue
		}
		var cur any = raw
		for _, part := range strings.Split(path, "/") {
			m, ok := cur.(map[string]any)
			if !ok {
				cur = nil
				break
			}
			cur = m[part]
		}
		if cur == nil {
			t.Errorf("$ref %s does not resolve", ref)
		}
	}
	for _, name := range events.SchemaNames() {
		if !usedSchemas[topics.SchemaPath(name)] {
			t.Errorf("schema %s is not referenced by the AsyncAPI document", name)
		}
	}
}
