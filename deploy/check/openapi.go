package check

import (
	"context"
	"path/filepath"

	"github.com/getkin/kin-openapi/openapi3"
)

// checkOpenAPI loads every service's OpenAPI document with kin-openapi and
// validates it against the OpenAPI 3 rules, so a document that code
// generators and API portals would refuse (invalid YAML, a dangling $ref, a
// wrong type) fails `make lint` instead of the first client's build.
func (c *checker) checkOpenAPI() {
	files, _ := filepath.Glob(filepath.Join(c.root, "services", "*", "openapi.yaml"))
	if len(files) == 0 {
		c.add("services", "", "", "no services/*/openapi.yaml found")
	}
	for _, f := range files {
		c.checkOpenAPIFile(f)
	}
}

func (c *checker) checkOpenAPIFile(path string) {
	l := openapi3.NewLoader()
	doc, err := l.LoadFromFile(path)
	if err != nil {
		c.add(c.rel(path), "", "", "does not load: %v", err)
		return
	}
	if err := doc.Validate(context.Background()); err != nil {
		c.add(c.rel(path), "", "", "invalid OpenAPI document: %v", err)
	}
}
