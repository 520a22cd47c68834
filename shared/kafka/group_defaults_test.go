package kafka

import (
	"testing"

	"backinstock/topics/catalog"
)

// TestDeadLetterDefaultsToTheCatalogue: a runner given no dead-letter topic
// rejects to the catalogue's, the one every consumer shares.
func TestDeadLetterDefaultsToTheCatalogue(t *testing.T) {
	o := GroupOptions{}
	o.setDefaults()
	if o.DeadLetterTopic != catalog.DeadLetter {
		t.Errorf("default DeadLetterTopic %q, want %q", o.DeadLetterTopic, catalog.DeadLetter)
	}
	o = GroupOptions{DeadLetterTopic: "dlq-test"}
	o.setDefaults()
	if o.DeadLetterTopic != "dlq-test" {
		t.Errorf("DeadLetterTopic %q, want the one given", o.DeadLetterTopic)
	}
}
