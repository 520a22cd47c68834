package events_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"backinstock/topics"
	"backinstock/topics/events"
)

func compileSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	out := map[string]*jsonschema.Schema{}
	for _, name := range events.SchemaNames() {
		data, err := fs.ReadFile(topics.Schemas, topics.SchemaPath(name))
		if err != nil {
			t.Fatalf("schema %s: %v", name, err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("schema %s is not JSON: %v", name, err)
		}
		url := "https://backinstock.example/schemas/" + name + ".schema.json"
		if id, _ := doc.(map[string]any)["$id"].(string); id != url {
			t.Errorf("schema %s: $id %q, want %q", name, id, url)
		}
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			t.Fatalf("compile schema %s: %v", name, err)
		}
		out[name] = sch
	}
	return out
}

// TestSchemasAgreeWithGo runs the decode table through the JSON Schemas: a
// document the Go validation accepts, the schema accepts, and the reverse,
// except for the deterministic-id rules no schema can express.
func TestSchemasAgreeWithGo(t *testing.T) {
	schemas := compileSchemas(t)
	for _, tc := range eventCases(t) {
		if tc.notJSON {
			continue
		}
		t.Run(tc.schema+"/"+tc.name, func(t *testing.T) {
			inst, err := jsonschema.UnmarshalJSON(strings.NewReader(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			schemaErr := schemas[tc.schema].Validate(inst)
			_, goErr := decode(tc.schema, []byte(tc.doc))
			schemaOK, goOK := schemaErr == nil, goErr == nil
			if tc.goOnly {
				if !schemaOK || goOK {
					t.Fatalf("want Go to reject and the schema to accept: go %v, schema %v", goErr, schemaErr)
				}
				return
			}
			if schemaOK != goOK {
				t.Fatalf("disagreement on %s\n go: %v\n schema: %v", tc.doc, goErr, schemaErr)
			}
		})
	}
}

// TestSchemasListTheGoFields checks property names and required lists
// against the Go types, so a field added on one side only is caught.
func TestSchemasListTheGoFields(t *testing.T) {
	docs := map[string]any{
		events.SchemaRestockEvent:        validRestock(),
		events.SchemaStockLevel:          validStock(),
		events.SchemaWishlistChange:      validWishlist(),
		events.SchemaNotification:        validPushNotification(),
		events.SchemaWishlistPreferences: validPreferences(),
		events.SchemaDeliveryStatus:      validDeliveryStatus(),
		events.SchemaWebhookEvent:        events.NewWebhookEvent(validNotification()),
		events.SchemaClickEvent:          validClick(),
		events.SchemaOrder:               validOrder(),
	}
	for name, v := range docs {
		data, err := fs.ReadFile(topics.Schemas, topics.SchemaPath(name))
		if err != nil {
			t.Fatal(err)
		}
		var sch struct {
			Required   []string       `json:"required"`
			Properties map[string]any `json:"properties"`
		}
		if err := json.Unmarshal(data, &sch); err != nil {
			t.Fatal(err)
		}
		full, _ := json.Marshal(v) // the valid values set every field
		var obj map[string]any
		if err := json.Unmarshal(full, &obj); err != nil {
			t.Fatal(err)
		}
		for k := range obj {
			if _, ok := sch.Properties[k]; !ok {
				t.Errorf("%s: Go field %s is not in the schema", name, k)
			}
		}
		for k := range sch.Properties {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s: schema property %s is not a Go field", name, k)
			}
		}
		// Required: exactly the fields the decoder requires, found by
		// deleting each one from a valid document.
		var required []string
		for k := range obj {
			probe := map[string]any{}
			for kk, vv := range obj {
				if kk != k {
					probe[kk] = vv
				}
			}
			b, _ := json.Marshal(probe)
			if _, err := decode(name, b); err != nil && (strings.Contains(err.Error(), k+": required;") || strings.HasSuffix(err.Error(), k+": required")) {
				required = append(required, k)
			}
		}
		slices.Sort(required)
		want := slices.Clone(sch.Required)
		slices.Sort(want)
		if !slices.Equal(required, want) {
			t.Errorf("%s: Go requires %v, the schema %v", name, required, want)
		}
	}
}
