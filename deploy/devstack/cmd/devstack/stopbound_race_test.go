//go:build race

package main

import "time"

// stopBound under the race detector, which slows every service's shutdown
// several times over (4.3–4.6 s seen on 2 cores, against 0.9 s in the plain
// build): the bound still catches a stop that hangs on a dead Redis (10.7 s
// in the plain build before), while the plain build holds the 3 s
// (stopbound_norace_test.go).
const stopBound = 12 * time.Second
