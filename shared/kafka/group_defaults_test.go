package kafka

import (
	"strings"
	"testing"
	"time"

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

// TestGroupOptionsRefuseNegatives: a negative tuning value is named, not
// replaced by the default as if it had been left out.
func TestGroupOptionsRefuseNegatives(t *testing.T) {
	base := GroupOptions{Group: "g", Topics: []string{"t"}}
	if err := base.Validate(); err != nil {
		t.Fatalf("zero tuning fields take the defaults: %v", err)
	}
	tests := []struct {
		field string
		set   func(*GroupOptions)
	}{
		{"MaxBatch", func(o *GroupOptions) { o.MaxBatch = -1 }},
		{"Linger", func(o *GroupOptions) { o.Linger = -time.Millisecond }},
		{"RetryBackoff", func(o *GroupOptions) { o.RetryBackoff = -time.Millisecond }},
		{"MaxBackoff", func(o *GroupOptions) { o.MaxBackoff = -time.Second }},
		{"FetchMaxWait", func(o *GroupOptions) { o.FetchMaxWait = -time.Millisecond }},
		{"CloseTimeout", func(o *GroupOptions) { o.CloseTimeout = -time.Second }},
		{"SessionTimeout", func(o *GroupOptions) { o.SessionTimeout = -time.Second }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			o := base
			tt.set(&o)
			if err := o.Validate(); err == nil || !strings.Contains(err.Error(), tt.field+":") {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.field)
			}
		})
	}
}
