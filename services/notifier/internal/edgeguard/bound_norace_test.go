//go:build !race

package edgeguard_test

import "time"

// closeBound is how soon a connection over the limit, or a revoked one, must
// be closed: the guard kicks within milliseconds of the connect event (see
// the logged figures), so a second is ample on 2 cores.
const closeBound = 2 * time.Second
