// Package cli runs a binary's commands the same way in every cmd/ main:
// subcommand dispatch, --help, settings from the environment with flags
// overriding, one exit code per outcome, and the process's one logger with
// sarama's global logger routed into it. A main is then a table of commands.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"

	"backinstock/shared/config"
	"backinstock/shared/lifecycle"
	"backinstock/shared/logging"
)

// Exit codes, the same for every binary.
const (
	ExitOK     = 0 // done, or --help
	ExitFailed = 1 // the command ran and failed
	ExitUsage  = 2 // bad command, flag, environment value or configuration
)

// Program is one binary: either a single Command with an empty Name, or
// subcommands chosen by the first argument.
type Program struct {
	Name string
	// Usage lists the subcommands; it is printed for `<name> --help` (exit
	// 0), with no command (exit 2) and after an unknown command.
	Usage    string
	Commands []Command
}

// Command is one subcommand, or the whole program when Name is empty.
type Command struct {
	Name string
	// Usage, when set, heads the command's --help above its flags.
	Usage string
	// LogLevel is the default of --log-level (LOG_LEVEL); empty means info.
	LogLevel string
	// Bind registers the command's settings on s and says how to run it.
	Bind func(s *config.Set) Action
}

// Action is a command whose settings are bound.
type Action struct {
	// Validate, when set, checks the parsed settings; an error exits 2.
	Validate func() error
	// Run does the work until ctx ends (SIGINT or SIGTERM). An error other
	// than context.Canceled is logged and exits 1.
	Run func(ctx context.Context, env Env) error
}

// Env is what a running command gets from the program.
type Env struct {
	Log    *zap.Logger
	Stdout io.Writer
	// Registry has the Go and process collectors registered; the command
	// adds its own metrics and serves it.
	Registry *prometheus.Registry
}

// Run runs the command args name (args without the program name) and
// returns the exit code; main passes it to os.Exit.
func (p Program) Run(args []string, stdout, stderr io.Writer) int {
	cmd, rest, code, ok := p.pick(args, stdout, stderr)
	if !ok {
		return code
	}
	name := p.Name
	if cmd.Name != "" {
		name += " " + cmd.Name
	}
	s := config.NewSet(name)
	s.FS.SetOutput(stderr)
	if cmd.Usage != "" {
		s.FS.Usage = func() {
			fmt.Fprint(s.FS.Output(), cmd.Usage)
			s.FS.PrintDefaults()
		}
	}
	act := cmd.Bind(s)
	level := cmd.LogLevel
	if level == "" {
		level = "info"
	}
	s.String(&level, "log-level", "LOG_LEVEL", level, "log level: debug, info, warn, error")
	if err := s.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		fmt.Fprintln(stderr, p.Name+":", err)
		return ExitUsage
	}
	if act.Validate != nil {
		if err := act.Validate(); err != nil {
			fmt.Fprintf(stderr, "%s: invalid configuration:\n%v\n", name, err)
			return ExitUsage
		}
	}
	log, err := logging.New(level)
	if err != nil {
		fmt.Fprintln(stderr, p.Name+":", err)
		return ExitUsage
	}
	defer func() { _ = log.Sync() }()
	logging.RouteSarama(log)
	logging.RouteRedis(log)
	ctx, stop := lifecycle.SignalContext(context.Background())
	defer stop()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := act.Run(ctx, Env{Log: log, Stdout: stdout, Registry: reg}); err != nil && !errors.Is(err, context.Canceled) {
		log.Error(name+" failed", zap.Error(err))
		return ExitFailed
	}
	return ExitOK
}

// pick finds the command args name; ok is false when the program has
// answered already (help, no command, unknown command) with code.
func (p Program) pick(args []string, stdout, stderr io.Writer) (cmd Command, rest []string, code int, ok bool) {
	if len(p.Commands) == 1 && p.Commands[0].Name == "" {
		return p.Commands[0], args, 0, true
	}
	if len(args) == 0 {
		fmt.Fprint(stdout, p.Usage)
		return Command{}, nil, ExitUsage, false
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, p.Usage)
		return Command{}, nil, ExitOK, false
	}
	for _, c := range p.Commands {
		if c.Name == args[0] {
			return c, args[1:], 0, true
		}
	}
	fmt.Fprintf(stderr, "%s: unknown command %q\n\n%s", p.Name, args[0], p.Usage)
	return Command{}, nil, ExitUsage, false
}
