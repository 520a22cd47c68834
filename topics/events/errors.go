package events

import (
	"strconv"
	"strings"
)

// FieldError is one problem with one field. Field is the JSON path of the
// field ("sku", "product.price", "channels[1]"); it is empty when the problem
// is with the value as a whole.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	return e.Field + ": " + e.Problem
}

// ValidationError lists every problem found in one value, so that a producer
// fixes them all in one round and the dead-letter reason is complete.
type ValidationError struct {
	// Type is the event type, e.g. "RestockEvent".
	Type     string
	Problems []*FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString(e.Type)
	b.WriteString(": ")
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find the individual FieldErrors.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p
	}
	return errs
}

// problems collects FieldErrors while a value is checked.
type problems struct {
	typ  string
	list []*FieldError
}

func (p *problems) add(field, problem string) {
	p.list = append(p.list, &FieldError{Field: field, Problem: problem})
}

// check records err when it is not nil.
func (p *problems) check(err *FieldError) {
	if err != nil {
		p.list = append(p.list, err)
	}
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	return &ValidationError{Type: p.typ, Problems: p.list}
}

// join builds a nested field path.
func join(prefix, field string) string {
	if prefix == "" {
		return field
	}
	return prefix + "." + field
}

// quote shows an offending value in a message, cut short so that a huge
// value does not flood logs and dead-letter headers.
func quote(s string) string {
	const max = 64
	r := []rune(s)
	if len(r) > max {
		return strconv.Quote(string(r[:max]) + "…")
	}
	return strconv.Quote(s)
}
