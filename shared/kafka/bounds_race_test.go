//go:build race

package kafka_test

import "time"

// Under the race detector on two cores everything runs several times
// slower; the bounds stay well below the session and rebalance timeouts'
// sum where it matters (restartBound < the 10 s session timeout).
const (
	settleBound  = 60 * time.Second
	restartBound = 8 * time.Second
)
