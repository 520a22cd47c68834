package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Section markers in docs/benchmarks.md: only the text between them is ours.
const (
	BeginMarker = "<!-- e2e-bench:begin -->"
	EndMarker   = "<!-- e2e-bench:end -->"
)

// Machine describes where the figures were taken.
type Machine struct {
	CPU    string
	Cores  int
	Memory string
	Go     string
	// Load is /proc/loadavg when the run started: other work on the
	// machine shows in the figures.
	Load string
}

// ThisMachine reads /proc/cpuinfo and /proc/meminfo.
func ThisMachine() Machine {
	m := Machine{CPU: "unknown", Cores: runtime.NumCPU(), Memory: "unknown", Go: runtime.Version()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		s := bufio.NewScanner(f)
		for s.Scan() {
			fields := strings.Fields(s.Text())
			if len(fields) >= 2 && fields[0] == "MemTotal:" {
				if kb, err := strconv.ParseFloat(fields[1], 64); err == nil {
					m.Memory = fmt.Sprintf("%.1f GiB", kb/(1<<20))
				}
				break
			}
		}
		f.Close()
	}
	return m
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond)) }

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// Table is the figures as a Markdown table.
func (r Result) Table() string {
	var b strings.Builder
	b.WriteString("| measure | figure | aim |\n|---|---|---|\n")
	aim := "≤ 12 s for 1,000,000"
	if r.Users == 1_000_000 {
		aim = "≤ 12 s: " + verdict(r.Total <= 12*time.Second)
	}
	fmt.Fprintf(&b, "| restock of one sku, %d wishlisters in one region: API call → last notification acknowledged at the edge | %.2f s (%.0f notifications/s) | %s |\n",
		r.Users, r.Total.Seconds(), r.Rate(), aim)
	fmt.Fprintf(&b, "| same restock: API call → first edge delivery | %s | |\n", ms(r.FirstDelivery))
	if r.Produced > 0 {
		fmt.Fprintf(&b, "| same restock: API call → the fan-out's last notification request in Kafka | %.2f s | |\n", r.Produced.Seconds())
	}
	if r.CPU != nil {
		fmt.Fprintf(&b, "| same restock: CPU seconds spent meanwhile | %s (%.1f s wall × %d cores available) | |\n", r.CPU, r.Total.Seconds(), runtime.NumCPU())
	}
	if r.Counts != nil {
		fmt.Fprintf(&b, "| same restock, read back from the edge stream | delivered %d, distinct %d, duplicates %d, missing %d | exactly once |\n",
			r.Counts.Delivered, r.Counts.Distinct, r.Counts.Duplicates, r.Counts.Missing)
	}
	fmt.Fprintf(&b, "| sku with 10 wishlisters, %d restocks: API call → first edge delivery, p50 | %s | |\n", r.Restocks, ms(r.P50))
	fmt.Fprintf(&b, "| same, p99 | %s | < 100 ms: %s |\n", ms(r.P99), verdict(r.P99 < 100*time.Millisecond))
	fmt.Fprintf(&b, "| same, max | %s | |\n", ms(r.Max))
	fmt.Fprintf(&b, "| setup (not timed above): `wishlist import` of the %d wishlisters | %.1f s | |\n", r.Users, r.ImportTime.Seconds())
	return b.String()
}

// Section is the Markdown that goes between the markers.
func Section(r Result, m Machine, command string, at time.Time) string {
	var b strings.Builder
	b.WriteString("## End-to-end benchmark (`make bench`)\n\n")
	fmt.Fprintf(&b, "Measured %s on %s, %d cores, %s memory, %s, with everything local: the real binaries "+
		"(inventory, wishlist serve and one fanout per region, one notifier per region) as separate processes "+
		"against a 3-broker kfake cluster, an embedded nats-server (JetStream file store, JWT auth) and redis-server (AOF), "+
		"default service settings. Load average when it started: %s.\n\n", at.UTC().Format("2006-01-02 15:04 MST"), m.CPU, m.Cores, m.Memory, m.Go, m.Load)
	fmt.Fprintf(&b, "Command: `%s`\n\n", command)
	b.WriteString(r.Table())
	b.WriteString("\nThe big restock is timed from the PUT /v1/stock call until the region's edge stream holds every " +
		"notification (its last sequence, i.e. each one was acknowledged by JetStream); one channel per wishlister, " +
		"round robin over app, web, email and sms. The latency is measured on a live NATS subscription to the edge " +
		"subjects; before each restock the sku is sold out through the same API.\n")
	return b.String()
}

// WriteSection replaces the text between the markers in path (creating the
// file, or appending the markers, when they are missing) and leaves the rest
// of the file as it is.
func WriteSection(path, section string) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	block := BeginMarker + "\n" + section + EndMarker + "\n"
	text := string(old)
	i := strings.Index(text, BeginMarker)
	j := strings.Index(text, EndMarker)
	switch {
	case len(old) == 0:
		text = "# Benchmarks\n\n" + block
	case i >= 0 && j > i:
		end := j + len(EndMarker)
		if end < len(text) && text[end] == '\n' {
			end++
		}
		text = text[:i] + block + text[end:]
	default:
		if !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += "\n" + block
	}
	return os.WriteFile(path, []byte(text), 0o644)
}
