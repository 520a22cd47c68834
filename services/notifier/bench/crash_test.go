package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDriver builds the real notifier and this driver without -race. Its
// crash part runs `notifier-bench crash`: 100,000 notifications over 4
// channels (four edge streams, three publish connections), the notifier
// SIGKILLed at after-reserve, after-publish, after-puback and after-mark in
// turn (restarted after each), then run to completion; the edge streams
// must hold every notification exactly once (total and distinct counted
// by JetStream consumers). NOTIFIER_CRASH_N
// overrides the size.
func TestDriver(t *testing.T) {
	if testing.Short() {
		t.Skip("builds binaries and runs 100,000 notifications")
	}
	n := 100000
	if v := os.Getenv("NOTIFIER_CRASH_N"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	// The notifier gets its test-only crash hook; a production build has none.
	build := func(pkg, out string) string {
		p := filepath.Join(dir, out)
		cmd := exec.Command("go", "build", "-tags", "crashhook", "-o", p, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, b)
		}
		return p
	}
	notifier := build("backinstock/services/notifier/cmd/notifier", "notifier")
	driver := build("backinstock/services/notifier/bench", "notifier-bench")
	t.Run("crash", func(t *testing.T) {
		out := runDriver(t, driver, "crash", "-notifier", notifier, "-n", strconv.Itoa(n))
		for _, want := range []string{"killed at after-reserve", "killed at after-publish", "killed at after-puback", "killed at after-mark", "exactly once: PASS"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q", want)
			}
		}
	})
	// The benchmark itself, small: it must run its three parts, print
	// every figure (make bench runs it at full size) and find the edge
	// exactly once despite 5% duplicate records in the notifier's input
	// (TestReadBackCatchesBrokenDedupe shows the read-back failing).
	t.Run("bench", func(t *testing.T) {
		out := runDriver(t, driver, "bench", "-notifier", notifier, "-n", "20000", "-rate", "2000", "-latency-for", "2s")
		for _, want := range []string{"(20000 distinct, 1000 duplicates)", "notifier: 20000 notifications",
			"expected=20000 delivered=20000 distinct=20000 duplicates=0 missing=0 unexpected=0 bad_headers=0", "exactly once: PASS", "latency produce -> edge at 2000/s", "produce -> Kafka ack", "bare loop: 20000", "ratio notifier / bare loop:"} {
			if !strings.Contains(out, want) {
				t.Fatalf("output lacks %q", want)
			}
		}
	})
}

func runDriver(t *testing.T, driver string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(driver, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Log("\n" + stdout.String())
	if err != nil {
		t.Fatalf("%s: %v\n%s", args[0], err, tail(stderr.String(), 4000))
	}
	return stdout.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
