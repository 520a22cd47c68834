//go:build race

package app_test

import "time"

// stallSlack is how late past its deadline a request against a stalled
// Redis may answer under the race detector on a loaded 2-core machine.
const stallSlack = 1500 * time.Millisecond
