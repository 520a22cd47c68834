package proccpu_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"backinstock/shared/proccpu"
)

// TestSpinIsCounted: a busy loop of this process shows up as its CPU time
// and the machine's, and an unreadable pid is left out rather than failing.
func TestSpinIsCounted(t *testing.T) {
	pids := map[string]int{"self": os.Getpid(), "gone": 1 << 30, "none": 0}
	a := proccpu.Take(pids)
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	u := proccpu.Between(a, proccpu.Take(pids))
	if got := u.Procs["self"]; got < 0.1 || got > 5 {
		t.Fatalf("self spent %.2f s spinning 0.3 s", got)
	}
	if _, ok := u.Procs["gone"]; ok {
		t.Fatal("a pid that does not exist was reported")
	}
	if u.Machine < u.Procs["self"]-0.02 {
		t.Fatalf("machine %.2f s < self %.2f s", u.Machine, u.Procs["self"])
	}
	if s := u.String(); !strings.HasPrefix(s, "self ") || !strings.Contains(s, "machine total") {
		t.Fatalf("String() = %q", s)
	}
}
