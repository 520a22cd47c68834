//go:build race

package redisconn_test

import "time"

// stallSlack is how late past its deadline a call against a stalled server
// may return under the race detector on a loaded 2-core machine.
const stallSlack = time.Second
