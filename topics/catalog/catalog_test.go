package catalog_test

import (
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

func TestEmbeddedCatalogue(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatalf("embedded catalogue: %v", err)
	}
	if err := cat.Validate(); err != nil {
		t.Fatalf("Validate on the loaded catalogue: %v", err)
	}
	want := []string{catalog.Restock, catalog.Stock, catalog.WishlistChanges, catalog.DeliveryStatus, catalog.Clicks, catalog.Orders, catalog.DeadLetter}
	for _, r := range catalog.DefaultRegions {
		for _, c := range events.ChannelNames() {
			want = append(want, catalog.Notify(r, c))
		}
	}
	names := cat.Names()
	for _, n := range want {
		if !slices.Contains(names, n) {
			t.Errorf("catalogue lacks %s", n)
		}
	}
	if len(names) != len(want) {
		t.Errorf("catalogue has %d topics, want %d: %v", len(names), len(want), names)
	}
	for name, wantValue := range map[string]string{
		catalog.Restock:                    events.SchemaRestockEvent,
		catalog.Stock:                      events.SchemaStockLevel,
		catalog.WishlistChanges:            events.SchemaWishlistChange,
		catalog.Notify("us-east-1", "sms"): events.SchemaNotification,
		catalog.DeliveryStatus:             events.SchemaDeliveryStatus,
		catalog.Clicks:                     events.SchemaClickEvent,
		catalog.Orders:                     events.SchemaOrder,
		catalog.DeadLetter:                 "",
	} {
		tp, ok := cat.Lookup(name)
		if !ok || tp.Value != wantValue {
			t.Errorf("%s: value %q (found %v), want %q", name, tp.Value, ok, wantValue)
		}
	}
	for _, compacted := range []string{catalog.Stock, catalog.WishlistChanges} {
		if tp, _ := cat.Lookup(compacted); tp.Configs[catalog.ConfigCleanupPolicy] != "compact" {
			t.Errorf("%s: cleanup.policy %q, want compact", compacted, tp.Configs[catalog.ConfigCleanupPolicy])
		}
	}
}

func TestForBrokersCapsWithoutChangingTheOriginal(t *testing.T) {
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	one := cat.ForBrokers(1)
	for _, tp := range one.Topics {
		if tp.ReplicationFactor != 1 || tp.Configs[catalog.ConfigMinInsyncReplicas] != "1" {
			t.Errorf("ForBrokers(1) %s: replication %d, min.insync.replicas %s", tp.Name, tp.ReplicationFactor, tp.Configs[catalog.ConfigMinInsyncReplicas])
		}
	}
	orig, _ := cat.Lookup(catalog.Restock)
	if orig.ReplicationFactor != 3 || orig.Configs[catalog.ConfigMinInsyncReplicas] != "2" {
		t.Errorf("ForBrokers changed the original: %+v", orig)
	}
	if three, _ := cat.ForBrokers(3).Lookup(catalog.Restock); three.ReplicationFactor != 3 || three.Configs[catalog.ConfigMinInsyncReplicas] != "2" {
		t.Errorf("ForBrokers(3) changed a 3-replica topic: %+v", three)
	}
}

func TestNotifyFollowsTheNamingRule(t *testing.T) {
	for _, r := range catalog.DefaultRegions {
		for _, c := range events.ChannelNames() {
			if err := catalog.CheckName(catalog.Notify(r, c)); err != nil {
				t.Errorf("Notify(%s, %s): %v", r, c, err)
			}
		}
	}
}

func TestParseNotify(t *testing.T) {
	for _, r := range catalog.DefaultRegions {
		for _, c := range events.ChannelNames() {
			if region, channel, ok := catalog.ParseNotify(catalog.Notify(r, c)); !ok || region != r || channel != c {
				t.Errorf("ParseNotify(Notify(%s, %s)) = %q, %q, %v", r, c, region, channel, ok)
			}
		}
	}
	tests := []struct {
		topic           string
		region, channel string
		ok              bool
	}{
		{"notify.us-east-1.app.v1", "us-east-1", "app", true},
		{"notify.bare.sms.v1", "bare", "sms", true},
		{"notify.us-east-1.app.v2", "", "", false},
		{"notify.us-east-1.fax.v1", "", "", false},
		{"notify.US-EAST-1.app.v1", "", "", false},
		{"notify.restock.us-east-1.app.v1", "", "", false},
		{"notify.us-east-1.app", "", "", false},
		{"inventory.restock.app.v1", "", "", false},
		{catalog.Restock, "", "", false},
		{catalog.DeadLetter, "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		region, channel, ok := catalog.ParseNotify(tt.topic)
		if region != tt.region || channel != tt.channel || ok != tt.ok {
			t.Errorf("ParseNotify(%q) = %q, %q, %v, want %q, %q, %v", tt.topic, region, channel, ok, tt.region, tt.channel, tt.ok)
		}
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		want string // "" for valid; otherwise a part of the message
	}{
		{"inventory.restock.v1", ""},
		{"deadletter.v1", ""},
		{"notify.us-east-1.app.v1", ""},
		{"notify.restock.us-east-1.email.v12", ""},
		{"", "required"},
		{"Inventory.restock.v1", "must be lowercase"},
		{"inventory.restock.V1", "must be lowercase"},
		{"inventory.re stock.v1", `contains ' '`},
		{"inventory.restock*.v1", `contains '*'`},
		{"inventory.restock>.v1", `contains '>'`},
		{"inventory.restock|sku.v1", `contains '|'`},
		{"inventory_restock.v1", "must not contain '_'"},
		{"inventory.restock", "must end with a version part"},
		{"inventory.restock.v0", "must end with a version part"},
		{"inventory.restock.v", "must end with a version part"},
		{"v1", "must end with a version part"},
		{"inventory..restock.v1", `part ""`},
		{"inventory.-restock.v1", `part "-restock"`},
		{"inventory.restock.fast.v1", `part "fast" is where`},
		{"notify.us-east-1.fax.v1", `part "fax" is where`},
		{"a.b.c.d.app.v1", "has 5 parts"},
		{strings.Repeat("a", 246) + ".v1", "must be at most 248 characters"},
		{strings.Repeat("a", 245) + ".v1", ""},
	}
	for _, tt := range tests {
		err := catalog.CheckName(tt.name)
		if tt.want == "" {
			if err != nil || !catalog.ValidName(tt.name) {
				t.Errorf("CheckName(%q) = %v, want valid", tt.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.want) || (tt.name != "" && !strings.Contains(err.Error(), `topic "`+tt.name+`": name:`)) {
			t.Errorf("CheckName(%q) = %v, want a message naming the topic and containing %q", tt.name, err, tt.want)
		}
	}
}

// validTopic is a catalogue entry that passes; each case below breaks one
// thing.
func validTopic() catalog.Topic {
	return catalog.Topic{
		Name:              "inventory.restock.v1",
		Description:       "restocks",
		Partitions:        12,
		ReplicationFactor: 3,
		Key:               "sku",
		Value:             "RestockEvent",
		Configs: map[string]string{
			"cleanup.policy":      "delete",
			"retention.ms":        "604800000",
			"min.insync.replicas": "2",
		},
	}
}

func catalogueYAML(t *testing.T, topics ...catalog.Topic) []byte {
	t.Helper()
	data, err := yaml.Marshal(catalog.Catalog{Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestLoadRejectsBadEntries(t *testing.T) {
	with := func(f func(*catalog.Topic)) catalog.Topic {
		tp := validTopic()
		f(&tp)
		return tp
	}
	tests := []struct {
		name   string
		topics []catalog.Topic
		want   []string // every one must appear in the error
	}{
		{"uppercase name", []catalog.Topic{with(func(t *catalog.Topic) { t.Name = "Inventory.Restock.v1" })},
			[]string{`topic "Inventory.Restock.v1": name: must be lowercase`}},
		{"too long", []catalog.Topic{with(func(t *catalog.Topic) { t.Name = strings.Repeat("x", 300) + ".v1" })},
			[]string{`name: must be at most 248 characters`}},
		{"no version", []catalog.Topic{with(func(t *catalog.Topic) { t.Name = "inventory.restock" })},
			[]string{`topic "inventory.restock": name: must end with a version part`}},
		{"item in the name", []catalog.Topic{with(func(t *catalog.Topic) { t.Name = "macbook14_wishlisted_us_east_1_app" })},
			[]string{`topic "macbook14_wishlisted_us_east_1_app": name: must not contain '_'`}},
		{"partitions 0", []catalog.Topic{with(func(t *catalog.Topic) { t.Partitions = 0 })},
			[]string{`topic "inventory.restock.v1": partitions: must be between 1 and 10000, got 0`}},
		{"replication 0", []catalog.Topic{with(func(t *catalog.Topic) { t.ReplicationFactor = 0 })},
			[]string{`topic "inventory.restock.v1": replication_factor: must be at least 1, got 0`}},
		{"unknown config", []catalog.Topic{with(func(t *catalog.Topic) { t.Configs["retention.msec"] = "1" })},
			[]string{`topic "inventory.restock.v1": configs.retention.msec: unknown config`}},
		{"bad cleanup.policy", []catalog.Topic{with(func(t *catalog.Topic) { t.Configs["cleanup.policy"] = "compacted" })},
			[]string{`topic "inventory.restock.v1": configs.cleanup.policy: must be one of delete, compact, compact,delete, got "compacted"`}},
		{"retention.ms below -1", []catalog.Topic{with(func(t *catalog.Topic) { t.Configs["retention.ms"] = "-2" })},
			[]string{`configs.retention.ms: must be at least -1`}},
		{"retention.ms not a number", []catalog.Topic{with(func(t *catalog.Topic) { t.Configs["retention.ms"] = "7d" })},
			[]string{`configs.retention.ms: must be an integer, got "7d"`}},
		{"min.insync above replication", []catalog.Topic{with(func(t *catalog.Topic) { t.ReplicationFactor = 2; t.Configs["min.insync.replicas"] = "3" })},
			[]string{`topic "inventory.restock.v1": configs.min.insync.replicas: must not exceed replication_factor 2, got 3`}},
		{"min.insync 0", []catalog.Topic{with(func(t *catalog.Topic) { t.Configs["min.insync.replicas"] = "0" })},
			[]string{`configs.min.insync.replicas: must be at least 1, got 0`}},
		{"tiny segments", []catalog.Topic{with(func(t *catalog.Topic) { t.Configs["segment.bytes"] = "1024" })},
			[]string{`configs.segment.bytes: must be at least 1048576`}},
		{"dirty ratio above 1", []catalog.Topic{with(func(t *catalog.Topic) { t.Configs["min.cleanable.dirty.ratio"] = "1.5" })},
			[]string{`configs.min.cleanable.dirty.ratio: must be a number between 0 and 1`}},
		{"unknown schema", []catalog.Topic{with(func(t *catalog.Topic) { t.Value = "Restock" })},
			[]string{`topic "inventory.restock.v1": value: unknown schema "Restock"`}},
		{"no key", []catalog.Topic{with(func(t *catalog.Topic) { t.Key = "" })},
			[]string{`topic "inventory.restock.v1": key: required`}},
		{"no description", []catalog.Topic{with(func(t *catalog.Topic) { t.Description = " " })},
			[]string{`topic "inventory.restock.v1": description: required`}},
		{"duplicate", []catalog.Topic{validTopic(), validTopic()},
			[]string{`topic "inventory.restock.v1": name: defined more than once`}},
		{"duplicate through a template", []catalog.Topic{
			with(func(t *catalog.Topic) { t.Name = "notify.{region}.{channel}.v1" }),
			with(func(t *catalog.Topic) { t.Name = "notify.eu-west-1.sms.v1" })},
			[]string{`topic "notify.eu-west-1.sms.v1": name: defined more than once`}},
		{"unknown placeholder", []catalog.Topic{with(func(t *catalog.Topic) { t.Name = "notify.{zone}.{channel}.v1" })},
			[]string{`topic "notify.{zone}.{channel}.v1": name: has an unknown placeholder`}},
		{"nameless entry", []catalog.Topic{with(func(t *catalog.Topic) { t.Name = "" })},
			[]string{`topic "topics[0]": name: required`}},
		{"several problems at once", []catalog.Topic{with(func(t *catalog.Topic) { t.Partitions = -1; t.Configs["cleanup.policy"] = "x" })},
			[]string{`partitions: must be between`, `configs.cleanup.policy: must be one of`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := catalog.Load(catalogueYAML(t, tt.topics...))
			if err == nil {
				t.Fatal("Load accepted the catalogue")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadRejectsBadDocuments(t *testing.T) {
	entry := "topics:\n  - name: inventory.restock.v1\n    description: d\n    partitions: 1\n    replication_factor: 1\n    key: sku\n    value: RestockEvent\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"misspelt field", strings.Replace(entry, "partitions:", "partitons:", 1), "field partitons not found"},
		{"unknown top-level field", "zones: [a]\n" + entry, "field zones not found"},
		{"wrong type", strings.Replace(entry, "partitions: 1", "partitions: twelve", 1), "cannot unmarshal"},
		{"two documents", entry + "---\n" + entry, "more than one YAML document"},
		{"empty", "", "empty document"},
		{"no topics", "regions: [us-east-1]\n", "topics: at least one topic is required"},
		{"bad region", "regions: [US-East-1]\n" + entry, `regions[0]: "US-East-1" must match`},
		{"duplicate region", "regions: [us-east-1, us-east-1]\n" + entry, `regions[1]: duplicate region "us-east-1"`},
		{"unknown channel", "channels: [app, fax]\n" + entry, `channels[1]: "fax" is not a channel`},
		{"template without regions", "regions: []\n" + strings.Replace(entry, "inventory.restock.v1", "notify.{region}.{channel}.v1", 1), "uses {region} but the catalogue lists none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := catalog.Load([]byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTemplateExpansion(t *testing.T) {
	doc := `regions: [eu-west-1, ap-south-1]
channels: [email]
topics:
  - name: notify.{region}.{channel}.v1
    description: d
    partitions: 0
    replication_factor: 1
    key: user_id
    value: Notification
`
	_, err := catalog.Load([]byte(doc))
	if err == nil {
		t.Fatal("Load accepted partitions 0")
	}
	// A problem in a templated entry is reported once, under the template.
	if got := strings.Count(err.Error(), "partitions:"); got != 1 || !strings.Contains(err.Error(), `topic "notify.{region}.{channel}.v1": partitions:`) {
		t.Fatalf("error %q: want one partitions problem naming the template", err)
	}

	cat, err := catalog.Load([]byte(strings.Replace(doc, "partitions: 0", "partitions: 6", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"notify.eu-west-1.email.v1", "notify.ap-south-1.email.v1"}; !slices.Equal(cat.Names(), want) {
		t.Fatalf("expanded to %v, want %v", cat.Names(), want)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	cat := &catalog.Catalog{Topics: []catalog.Topic{validTopic(), validTopic()}}
	cat.Topics[1].Name = "notify.{region}.app.v1" // templates are expanded by Load only
	cat.Topics[0].Configs["min.insync.replicas"] = "4"
	err := cat.Validate()
	for _, w := range []string{
		`topic "inventory.restock.v1": configs.min.insync.replicas: must not exceed replication_factor 3`,
		`topic "notify.{region}.app.v1": name: contains '{'`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate: %v, want it to contain %q", err, w)
		}
	}
}
