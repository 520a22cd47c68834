// Command deploycheck validates the deployment files and the OpenAPI documents offline (kustomize
// overlays decoded strictly into the Kubernetes API types, the compose file,
// the Dockerfile, the dashboard and alert rules) and prints every problem
// with its file and field. It exits 1 when there is any problem, so `make
// lint` fails on a misspelt field.
//
//	go run ./deploy/check/cmd/deploycheck [--root DIR]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"backinstock/deploy/check"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("deploycheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	root := fs.String("root", ".", "repository root (the directory holding deploy/)")
	writeRules := fs.Bool("write-rules", false, "regenerate "+check.PrometheusRuleFile+" from "+check.MonitoringFiles.Alerts+" and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if _, err := os.Stat(filepath.Join(*root, "deploy")); err != nil {
		fmt.Fprintf(stderr, "deploycheck: %s is not the repository root (no deploy/); run from the root or pass --root\n", *root)
		return 2
	}
	if *writeRules {
		alerts, err := os.ReadFile(filepath.Join(*root, check.MonitoringFiles.Alerts))
		if err == nil {
			var out []byte
			if out, err = check.PrometheusRuleYAML(alerts); err == nil {
				err = os.WriteFile(filepath.Join(*root, check.PrometheusRuleFile), out, 0o644)
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, "deploycheck:", err)
			return 1
		}
		fmt.Fprintln(stdout, "wrote", check.PrometheusRuleFile)
		return 0
	}
	problems, err := check.Run(check.Options{Root: *root})
	if err != nil {
		fmt.Fprintln(stderr, "deploycheck:", err)
		return 2
	}
	for _, p := range problems {
		fmt.Fprintln(stdout, p)
	}
	if len(problems) > 0 {
		fmt.Fprintf(stderr, "deploycheck: %d problem(s)\n", len(problems))
		return 1
	}
	fmt.Fprintln(stdout, "deploycheck: k8s overlays, compose, Dockerfile, dashboard, alerts and OpenAPI documents OK")
	return 0
}
