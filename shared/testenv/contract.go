package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// Contract is an http.RoundTripper that holds a service's tests to its
// OpenAPI document: every response must be one the document declares for
// its route and status (a field it does not declare, a missing required one,
// a wrong type or an undocumented status is an error; see closeResponses),
// and a request the document forbids must not be answered 2xx. A violation
// is returned as the round trip's error, so the test's client call fails
// with it and no test needs a *testing.T to be checked.
//
// Requests the tests send on purpose to be refused (bad bodies, missing
// tokens) are fine as long as the service refuses them; authentication
// itself is not checked here (the services' own tests do).
type Contract struct {
	// Doc is the OpenAPI document's path.
	Doc string
	// Next sends the request; nil: http.DefaultTransport.
	Next http.RoundTripper

	once   sync.Once
	router routers.Router
	err    error
}

func (c *Contract) load() {
	// kin-openapi decodes text/plain but not text/html: the pages some
	// routes answer (the wishlist's one-click unsubscribe) are checked as
	// strings, like text/plain. The registry is the package's; registering
	// the same decoder again is harmless.
	if openapi3filter.RegisteredBodyDecoder("text/html") == nil {
		openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder)
	}
	l := openapi3.NewLoader()
	doc, err := l.LoadFromFile(c.Doc)
	if err != nil {
		c.err = fmt.Errorf("OpenAPI document %s: %w", c.Doc, err)
		return
	}
	if err := doc.Validate(context.Background()); err != nil {
		c.err = fmt.Errorf("OpenAPI document %s: %w", c.Doc, err)
		return
	}
	// Tests listen on free ports, not on the documented server address.
	doc.Servers = nil
	closeResponses(doc)
	c.router, c.err = legacy.NewRouter(doc)
}

// RoundTrip sends req and checks it and its answer against the document.
func (c *Contract) RoundTrip(req *http.Request) (*http.Response, error) {
	c.once.Do(c.load)
	if c.err != nil {
		return nil, c.err
	}
	next := c.Next
	if next == nil {
		next = http.DefaultTransport
	}
	// The body is read twice: once by the check, once by the server.
	var reqBody []byte
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	respBody, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(respBody))

	route, params, err := c.router.FindRoute(req)
	if err != nil {
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return resp, nil // an unknown route, refused as it should be
		}
		return nil, fmt.Errorf("contract %s: %s %s answered %d but is not in the document: %w", c.Doc, req.Method, req.URL.Path, resp.StatusCode, err)
	}
	probe := req.Clone(req.Context())
	probe.Body = io.NopCloser(bytes.NewReader(reqBody))
	// The services read a body sent without Content-Type as the one type
	// the route takes (httpapi.Decode), so it is checked as that type.
	if rb := route.Operation.RequestBody; probe.Header.Get("Content-Type") == "" && len(reqBody) > 0 && rb != nil && rb.Value != nil && len(rb.Value.Content) == 1 {
		for mt := range rb.Value.Content {
			probe.Header.Set("Content-Type", mt)
		}
	}
	in := &openapi3filter.RequestValidationInput{
		Request: probe, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true,
			// An NDJSON body's schema is that of one line, and bad lines
			// are skipped and counted by design, so the body is not
			// checked whole.
			ExcludeRequestBody: strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-ndjson")},
	}
	reqErr := openapi3filter.ValidateRequest(req.Context(), in)
	if reqErr != nil && resp.StatusCode < 300 {
		return nil, fmt.Errorf("contract %s: %s %s answered %d to a request the document forbids: %s", c.Doc, req.Method, req.URL.Path, resp.StatusCode, brief(reqErr))
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(respBody)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(req.Context(), out); err != nil {
		return nil, fmt.Errorf("contract %s: %s %s answered %d %s, which the document does not declare: %s", c.Doc, req.Method, req.URL.Path, resp.StatusCode, clip(respBody), brief(err))
	}
	return resp, nil
}

// closeResponses reads every response object that lists its properties
// and says nothing of others as closed (additionalProperties: false), so a
// field a handler adds without documenting it fails the tests. (Request
// bodies are closed in the documents themselves: the decoders refuse
// unknown keys.)
func closeResponses(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	var walk func(*openapi3.SchemaRef)
	walk = func(r *openapi3.SchemaRef) {
		if r == nil || r.Value == nil || seen[r.Value] {
			return
		}
		s := r.Value
		seen[s] = true
		if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil && len(s.AllOf) == 0 {
			closed := false
			s.AdditionalProperties.Has = &closed
		}
		for _, p := range s.Properties {
			walk(p)
		}
		walk(s.Items)
		walk(s.AdditionalProperties.Schema)
		for _, list := range []openapi3.SchemaRefs{s.AllOf, s.OneOf, s.AnyOf} {
			for _, x := range list {
				walk(x)
			}
		}
	}
	for _, path := range doc.Paths.Map() {
		for _, op := range path.Operations() {
			for _, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for _, mt := range resp.Value.Content {
					walk(mt.Schema)
				}
			}
		}
	}
}

// brief keeps what failed and why; kin-openapi also prints the whole schema
// and value, indented, which buries the reason (and its option to leave them
// out does not work for OpenAPI 3.1 documents).
func brief(err error) string {
	var keep []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l != "" && l[0] != ' ' && l[0] != '\t' {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, " ")
}

func clip(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}
