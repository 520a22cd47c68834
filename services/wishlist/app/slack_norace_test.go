//go:build !race

package app_test

import "time"

// stallSlack is how late past its deadline a request against a stalled
// Redis may answer on a loaded 2-core machine.
const stallSlack = 500 * time.Millisecond
