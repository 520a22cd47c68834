// Package config reads settings the 12-factor way: every key has an
// environment variable, and a command-line flag of the same meaning overrides it.
package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Set binds flags to destinations whose defaults come from the environment.
// Bad environment values are collected and reported by Parse, naming the
// variable, so a typo in a deployment fails at start-up with a clear message.
type Set struct {
	FS   *flag.FlagSet
	errs []error
}

// NewSet starts a flag set for one command; usage text goes to the flag set's output.
func NewSet(name string) *Set {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	return &Set{FS: fs}
}

func (s *Set) env(key string) (string, bool) {
	if key == "" {
		return "", false
	}
	v, ok := os.LookupEnv(key)
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

func usage(key, text string) string {
	if key == "" {
		return text
	}
	return fmt.Sprintf("%s (env %s)", text, key)
}

// String binds a string flag with an env default.
func (s *Set) String(dst *string, name, key, def, text string) {
	if v, ok := s.env(key); ok {
		def = v
	}
	s.FS.StringVar(dst, name, def, usage(key, text))
}

// Int binds an int flag with an env default.
func (s *Set) Int(dst *int, name, key string, def int, text string) {
	if v, ok := s.env(key); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not an integer", key, v))
		} else {
			def = n
		}
	}
	s.FS.IntVar(dst, name, def, usage(key, text))
}

// Int64 binds an int64 flag with an env default.
func (s *Set) Int64(dst *int64, name, key string, def int64, text string) {
	if v, ok := s.env(key); ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not an integer", key, v))
		} else {
			def = n
		}
	}
	s.FS.Int64Var(dst, name, def, usage(key, text))
}

// Float binds a float64 flag with an env default.
func (s *Set) Float(dst *float64, name, key string, def float64, text string) {
	if v, ok := s.env(key); ok {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not a number", key, v))
		} else {
			def = n
		}
	}
	s.FS.Float64Var(dst, name, def, usage(key, text))
}

// Bool binds a bool flag with an env default.
func (s *Set) Bool(dst *bool, name, key string, def bool, text string) {
	if v, ok := s.env(key); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not a boolean", key, v))
		} else {
			def = b
		}
	}
	s.FS.BoolVar(dst, name, def, usage(key, text))
}

// Duration binds a duration flag (Go syntax: 250ms, 5s, 24h) with an env default.
func (s *Set) Duration(dst *time.Duration, name, key string, def time.Duration, text string) {
	if v, ok := s.env(key); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("%s: %q is not a duration (e.g. 500ms, 5s)", key, v))
		} else {
			def = d
		}
	}
	s.FS.DurationVar(dst, name, def, usage(key, text))
}

// List binds a comma-separated list flag with an env default.
func (s *Set) List(dst *[]string, name, key string, def []string, text string) {
	if v, ok := s.env(key); ok {
		def = SplitList(v)
	}
	*dst = def
	s.FS.Func(name, usage(key, text)+fmt.Sprintf(" (comma-separated, default %q)", strings.Join(def, ",")), func(v string) error {
		*dst = SplitList(v)
		return nil
	})
}

// Parse parses args and returns the environment errors and flag errors together.
// flag.ErrHelp is returned as is so callers can exit 0 on --help.
func (s *Set) Parse(args []string) error {
	if err := s.FS.Parse(args); err != nil {
		return err
	}
	return errors.Join(s.errs...)
}

// SplitList splits a comma-separated value, trimming blanks and dropping empties.
func SplitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Problems collects validation failures; each names the setting it is about.
type Problems struct{ errs []error }

// Addf records a problem with the named setting.
func (p *Problems) Addf(setting, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", setting, fmt.Sprintf(format, args...)))
}

// Add records an error as is (nil is ignored).
func (p *Problems) Add(err error) {
	if err != nil {
		p.errs = append(p.errs, err)
	}
}

// Err returns all problems joined, or nil.
func (p *Problems) Err() error { return errors.Join(p.errs...) }

// NotNegative records a problem when v is below zero. Options take their
// default where a field is zero, so a negative value is the one mistake to
// name rather than silently replace.
func NotNegative[T ~int | ~int32 | ~int64](p *Problems, setting string, v T) {
	if v < 0 {
		p.Addf(setting, "must not be negative, got %v", v)
	}
}

// Default sets *dst to def when it holds its type's zero value: the one way
// an options struct's setDefaults fills what a caller left unset.
func Default[T comparable](dst *T, def T) {
	var zero T
	if *dst == zero {
		*dst = def
	}
}

// Positive records a problem when v is zero or below: for settings whose
// zero has no meaning once the defaults are applied.
func Positive[T ~int | ~int32 | ~int64](p *Problems, setting string, v T) {
	if v <= 0 {
		p.Addf(setting, "must be positive, got %v", v)
	}
}
