//go:build !race

package kafka_test

import "time"

// Bounds of the storm tests: how long after the last restart a group may
// take to settle, and how long a restart or a leave may take to show.
const (
	settleBound  = 30 * time.Second
	restartBound = 5 * time.Second
)
