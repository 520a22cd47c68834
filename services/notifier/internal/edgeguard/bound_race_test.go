//go:build race

package edgeguard_test

import "time"

// closeBound under the race detector, which slows the server, the client
// and the guard several times over on 2 cores.
const closeBound = 10 * time.Second
