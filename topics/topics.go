// Package topics holds the contracts every backinstock service codes
// against: the topic catalogue, the JSON Schemas of the event values and the
// AsyncAPI document of the channels. The files are embedded so that the
// services, the local stack and the catalogue tool all read the very same
// bytes that are reviewed in the repository.
package topics

import "embed"

// CatalogYAML is the topic catalogue, the single source of truth for topic
// names, partitions, replication, configs and schemas. Parse it with
// catalog.Load or catalog.Default.
//
//go:embed catalog.yaml
var CatalogYAML []byte

// AsyncAPIYAML is the AsyncAPI 3.0 document describing the Kafka channels
// and the NATS edge subjects; it is embedded so a service can serve it.
//
//go:embed asyncapi.yaml
var AsyncAPIYAML []byte

// Schemas holds the JSON Schemas (draft 2020-12) of the event values as
// schemas/<Name>.schema.json, embedded so a consumer can check a payload
// without a copy of the repository.
//
//go:embed schemas/*.schema.json
var Schemas embed.FS

// SchemaPath is the path inside Schemas of the named schema (e.g.
// "RestockEvent").
func SchemaPath(name string) string { return "schemas/" + name + ".schema.json" }
