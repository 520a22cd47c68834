package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteSection(t *testing.T) {
	block := func(s string) string { return BeginMarker + "\n" + s + EndMarker + "\n" }
	cases := []struct {
		name, before, want string
	}{
		{"missing file", "", "# Benchmarks\n\n" + block("new\n")},
		{"no markers yet", "# Benchmarks\n\nother\n", "# Benchmarks\n\nother\n\n" + block("new\n")},
		{"replaces only between markers", "head\n" + block("old\n") + "tail\n", "head\n" + block("new\n") + "tail\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "benchmarks.md")
			if c.before != "" {
				if err := os.WriteFile(path, []byte(c.before), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteSection(path, "new\n"); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(path)
			if string(got) != c.want {
				t.Errorf("file =\n%q\nwant\n%q", got, c.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 200; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	cases := []struct {
		p    float64
		want time.Duration
	}{{0.5, 100 * time.Millisecond}, {0.99, 198 * time.Millisecond}, {1, 200 * time.Millisecond}}
	for _, c := range cases {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("percentile(%v) = %s, want %s", c.p, got, c.want)
		}
	}
}

func TestSectionNamesMachineAndCommand(t *testing.T) {
	r := Result{Users: 1_000_000, Total: 10 * time.Second, Delivered: 1_000_000, Restocks: 200, P50: 20 * time.Millisecond, P99: 40 * time.Millisecond, Max: 50 * time.Millisecond}
	s := Section(r, Machine{CPU: "Test CPU", Cores: 2, Memory: "23.5 GiB", Go: "go1.26"}, "make bench", time.Unix(0, 0))
	for _, want := range []string{"Test CPU", "2 cores", "23.5 GiB", "`make bench`", "10.00 s", "< 100 ms: met", "≤ 12 s: met"} {
		if !strings.Contains(s, want) {
			t.Errorf("section lacks %q:\n%s", want, s)
		}
	}
}
