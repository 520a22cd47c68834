package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Ports are handed out once per machine while their process lives, below
// the ephemeral range, and a dead process's claim is taken over.
func TestFreePortClaims(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		if p < 30000 || p > 32767 {
			t.Fatalf("port %d outside 30000-32767", p)
		}
		data, err := os.ReadFile(filepath.Join(portClaims, strconv.Itoa(p)))
		if err != nil || string(data) != strconv.Itoa(os.Getpid()) {
			t.Fatalf("claim of %d: %q %v", p, data, err)
		}
	}
	// A claim by a process that no longer exists is taken over.
	const dead = 1 << 22 // above pid_max's default: no such process
	for p := range seen {
		path := filepath.Join(portClaims, strconv.Itoa(p))
		if err := os.WriteFile(path, []byte(strconv.Itoa(dead)), 0o666); err != nil {
			t.Fatal(err)
		}
		if !claimPort(p) {
			t.Fatalf("the dead claim of %d was not taken over", p)
		}
		if claimPort(p) {
			t.Fatalf("port %d claimed twice by one process", p)
		}
		break
	}
}
