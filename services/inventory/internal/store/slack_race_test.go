//go:build race

package store

import "time"

// stallSlack is how late past its deadline a call against a stalled Redis
// may return under the race detector on a loaded 2-core machine.
const stallSlack = time.Second
