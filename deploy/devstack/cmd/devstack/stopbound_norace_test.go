//go:build !race

package main

import "time"

// stopBound is how long Ctrl-C may take: the 3 s (measured 0.9 s).
const stopBound = 3 * time.Second
