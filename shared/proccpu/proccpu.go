// Package proccpu reads how much CPU time processes and the whole machine
// spent, from Linux's /proc: what the benchmarks report per process (CPU
// seconds per million notifications), which wall time on a shared machine
// cannot show.
package proccpu

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of /proc times (100 on Linux).
const clockTicks = 100

// Seconds reads a process's user+system CPU time from /proc/<pid>/stat.
func Seconds(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name may hold spaces; the fields after ')' are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return (ut + st) / clockTicks, nil
}

// MachineBusy is the machine's non-idle CPU time in seconds (/proc/stat).
func MachineBusy() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat")
	}
	var busy float64
	for i, v := range f[1:] {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, err
		}
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		busy += n
	}
	return busy / clockTicks, nil
}

// Sample is the CPU time of named processes, and of the machine, at one
// moment.
type Sample struct {
	procs   map[string]float64
	machine float64
}

// Take samples the processes (name -> pid; a pid of 0 or one that cannot
// be read is left out) and the machine.
func Take(pids map[string]int) Sample {
	s := Sample{procs: map[string]float64{}}
	for name, pid := range pids {
		if pid == 0 {
			continue
		}
		if v, err := Seconds(pid); err == nil {
			s.procs[name] = v
		}
	}
	s.machine, _ = MachineBusy()
	return s
}

// Use is the CPU seconds each process, and the machine, spent between two
// samples.
type Use struct {
	Procs   map[string]float64
	Machine float64
}

// Between is what was spent from a to b.
func Between(a, b Sample) Use {
	u := Use{Procs: map[string]float64{}, Machine: b.machine - a.machine}
	for name, v := range b.procs {
		if v0, ok := a.procs[name]; ok {
			u.Procs[name] = v - v0
		}
	}
	return u
}

// String lists the processes by CPU seconds, largest first.
func (u Use) String() string {
	names := make([]string, 0, len(u.Procs))
	for n := range u.Procs {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return u.Procs[names[i]] > u.Procs[names[j]] })
	var parts []string
	for _, n := range names {
		if u.Procs[n] >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.1f s", n, u.Procs[n]))
		}
	}
	return fmt.Sprintf("%s; machine total %.1f s", strings.Join(parts, ", "), u.Machine)
}
