package edge_test

import (
	"strings"

	"backinstock/topics/events"
)

// matches is NATS subject matching: '*' is one token, a final '>' one or
// more. Written here so the contract module needs no NATS dependency.
func matches(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		if tok == ">" {
			return i == len(f)-1 && len(s) > i
		}
		if i >= len(s) || tok != "*" && tok != s[i] {
			return false
		}
	}
	return len(f) == len(s)
}

// validParts is the fuzz oracle: the parts of a subject ParseSubject must
// accept.
func validParts(region, channel, userID string) bool {
	return events.ValidRegion(region) && events.ValidChannel(channel) && events.ValidID(userID)
}
