package kafka

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

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

// TestGroupOptionsRefuseBadValues: a negative tuning value or an illegal
// instance id is named, not replaced by the default as if it had been left
// out.
func TestGroupOptionsRefuseBadValues(t *testing.T) {
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
		{"RebalanceTimeout", func(o *GroupOptions) { o.RebalanceTimeout = -time.Second }},
		{"InstanceID", func(o *GroupOptions) { o.InstanceID = "pod/1" }},
		{"InstanceID", func(o *GroupOptions) { o.InstanceID = strings.Repeat("a", 250) }},
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

// TestJoinGroupOutwaitsTheRebalance: the coordinator answers a JoinGroup
// only when the rebalance completes, up to the rebalance timeout after it
// began, so the client must wait longer than that for the answer; with
// sarama's 30 s read timeout under a 60 s rebalance timeout, members gave
// up mid-join and rejoined, restarting the rebalance (issue 13).
func TestJoinGroupOutwaitsTheRebalance(t *testing.T) {
	for _, rt := range []time.Duration{0, 5 * time.Second, 20 * time.Second, 45 * time.Second, 2 * time.Minute} {
		o := GroupOptions{Group: "g", Topics: []string{"t"}, RebalanceTimeout: rt}
		o.setDefaults()
		sc, err := groupSarama(Config{Brokers: []string{"127.0.0.1:9092"}}, o)
		if err != nil {
			t.Fatal(err)
		}
		got := sc.Consumer.Group.Rebalance.Timeout
		if rt == 0 && got != 20*time.Second {
			t.Errorf("default rebalance timeout %s, want 20s", got)
		}
		if rt != 0 && got != rt {
			t.Errorf("rebalance timeout %s, want the %s given", got, rt)
		}
		if sc.Net.ReadTimeout < got+5*time.Second {
			t.Errorf("rebalance timeout %s: read timeout %s does not outwait it by 5 s", got, sc.Net.ReadTimeout)
		}
		if sc.Net.ReadTimeout < 30*time.Second {
			t.Errorf("rebalance timeout %s: read timeout %s below sarama's 30 s default", got, sc.Net.ReadTimeout)
		}
	}
}

// TestInstanceIDReachesSarama: a static member's id is the one given, and
// no id leaves the member dynamic.
func TestInstanceIDReachesSarama(t *testing.T) {
	for _, id := range []string{"", "notifier-us-east-1-7c9f-x2"} {
		o := GroupOptions{Group: "g", Topics: []string{"t"}, InstanceID: id}
		if err := o.Validate(); err != nil {
			t.Fatalf("Validate(%q) = %v", id, err)
		}
		o.setDefaults()
		sc, err := groupSarama(Config{Brokers: []string{"127.0.0.1:9092"}}, o)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Consumer.Group.InstanceId != id {
			t.Errorf("InstanceId %q, want %q", sc.Consumer.Group.InstanceId, id)
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("sarama refuses the config with instance id %q: %v", id, err)
		}
	}
}

// TestConsumerSettingsReachSarama: KAFKA_START and the fetch sizes are
// what the group's sarama config carries, and left unset they keep the
// behaviour from before they existed (earliest, 1 MiB per partition,
// 50 MiB per fetch).
func TestConsumerSettingsReachSarama(t *testing.T) {
	tests := []struct {
		c                   Config
		initial             int64
		total, perPartition int32
	}{
		{Config{}, sarama.OffsetOldest, 50 << 20, 1 << 20},
		{Config{Start: StartEarliest}, sarama.OffsetOldest, 50 << 20, 1 << 20},
		{Config{Start: StartLatest, FetchMaxBytes: 8 << 20, FetchPartitionMaxBytes: 256 << 10}, sarama.OffsetNewest, 8 << 20, 256 << 10},
	}
	for _, tt := range tests {
		tt.c.Brokers = []string{"127.0.0.1:9092"}
		o := GroupOptions{Group: "g", Topics: []string{"t"}}
		o.setDefaults()
		sc, err := groupSarama(tt.c, o)
		if err != nil {
			t.Fatal(err)
		}
		if sc.Consumer.Offsets.Initial != tt.initial || sc.Consumer.Fetch.MaxBytes != tt.total || sc.Consumer.Fetch.Default != tt.perPartition {
			t.Errorf("%+v: initial %d, fetch %d, per partition %d; want %d, %d, %d", tt.c, sc.Consumer.Offsets.Initial,
				sc.Consumer.Fetch.MaxBytes, sc.Consumer.Fetch.Default, tt.initial, tt.total, tt.perPartition)
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("%+v: sarama refuses the config: %v", tt.c, err)
		}
	}
}
