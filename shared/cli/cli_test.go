package cli_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"backinstock/shared/cli"
	"backinstock/shared/config"
)

// program has two commands: "echo" prints its --word and "fail" returns an
// error, or context.Canceled with --canceled; --n must be positive.
func program(ran *bool) cli.Program {
	return cli.Program{
		Name:  "demo",
		Usage: "usage: demo <command>\n",
		Commands: []cli.Command{
			{Name: "echo", Bind: func(s *config.Set) cli.Action {
				var word string
				var n int
				s.String(&word, "word", "DEMO_WORD", "hi", "word to print")
				s.Int(&n, "n", "DEMO_N", 1, "times")
				return cli.Action{
					Validate: func() error {
						if n <= 0 {
							return errors.New("DEMO_N: must be positive")
						}
						return nil
					},
					Run: func(_ context.Context, env cli.Env) error {
						*ran = true
						if env.Log == nil || env.Registry == nil {
							return errors.New("no logger or registry")
						}
						_, err := env.Stdout.Write([]byte(strings.Repeat(word, n) + "\n"))
						return err
					},
				}
			}},
			{Name: "fail", LogLevel: "warn", Bind: func(s *config.Set) cli.Action {
				var canceled bool
				s.Bool(&canceled, "canceled", "", false, "end as if interrupted")
				return cli.Action{Run: func(context.Context, cli.Env) error {
					*ran = true
					if canceled {
						return context.Canceled
					}
					return errors.New("boom")
				}}
			}},
		},
	}
}

func TestProgramExitCodes(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		code      int
		ran       bool
		stdout    string
		stderrHas string
	}{
		{name: "no command", args: nil, code: cli.ExitUsage, stdout: "usage: demo <command>\n"},
		{name: "help", args: []string{"--help"}, code: cli.ExitOK, stdout: "usage: demo <command>\n"},
		{name: "help word", args: []string{"help"}, code: cli.ExitOK, stdout: "usage: demo <command>\n"},
		{name: "unknown command", args: []string{"nope"}, code: cli.ExitUsage, stderrHas: `demo: unknown command "nope"`},
		{name: "command help", args: []string{"echo", "--help"}, code: cli.ExitOK, stderrHas: "(env DEMO_WORD)"},
		{name: "command help names LOG_LEVEL", args: []string{"echo", "-h"}, code: cli.ExitOK, stderrHas: "(env LOG_LEVEL)"},
		{name: "bad flag", args: []string{"echo", "--nope"}, code: cli.ExitUsage, stderrHas: "demo: flag provided but not defined"},
		{name: "bad env", args: []string{"echo"}, env: map[string]string{"DEMO_N": "x"}, code: cli.ExitUsage, stderrHas: `DEMO_N: "x" is not an integer`},
		{name: "invalid configuration", args: []string{"echo", "--n", "0"}, code: cli.ExitUsage, stderrHas: "demo echo: invalid configuration:\nDEMO_N: must be positive"},
		{name: "bad log level", args: []string{"echo", "--log-level", "loud"}, code: cli.ExitUsage, stderrHas: "LOG_LEVEL"},
		{name: "runs", args: []string{"echo", "--word", "ab", "--n", "2"}, code: cli.ExitOK, ran: true, stdout: "abab\n"},
		{name: "env then flag", args: []string{"echo", "--n", "1"}, env: map[string]string{"DEMO_WORD": "w", "DEMO_N": "3"}, code: cli.ExitOK, ran: true, stdout: "w\n"},
		{name: "fails", args: []string{"fail"}, code: cli.ExitFailed, ran: true}, // logged to the process stderr by zap
		{name: "interrupted", args: []string{"fail", "--canceled"}, code: cli.ExitOK, ran: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var ran bool
			var stdout, stderr bytes.Buffer
			code := program(&ran).Run(tt.args, &stdout, &stderr)
			if code != tt.code || ran != tt.ran {
				t.Fatalf("code %d ran %v, want %d %v; stderr:\n%s", code, ran, tt.code, tt.ran, stderr.String())
			}
			if tt.stdout != "" && stdout.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderrHas) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderrHas, stderr.String())
			}
		})
	}
}

func TestSingleCommandProgramUsesItsUsage(t *testing.T) {
	var got string
	p := cli.Program{Name: "one", Commands: []cli.Command{{
		Usage: "Usage: one [flags]\n\n",
		Bind: func(s *config.Set) cli.Action {
			s.String(&got, "x", "ONE_X", "d", "x")
			return cli.Action{Run: func(context.Context, cli.Env) error { return nil }}
		},
	}}}
	var stdout, stderr bytes.Buffer
	if code := p.Run([]string{"--help"}, &stdout, &stderr); code != cli.ExitOK || !strings.HasPrefix(stderr.String(), "Usage: one [flags]\n\n") {
		t.Fatalf("--help: code %d, stderr:\n%s", code, stderr.String())
	}
	if code := p.Run([]string{"--x", "y"}, &stdout, &stderr); code != cli.ExitOK || got != "y" {
		t.Fatalf("run: code %d, x %q", code, got)
	}
}
