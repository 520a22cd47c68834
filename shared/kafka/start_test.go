package kafka_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

// TestStartPosition: a new group starts at the earliest record by default
// and with KAFKA_START=earliest, and skips what the topic already holds
// with KAFKA_START=latest.
func TestStartPosition(t *testing.T) {
	for _, start := range []string{"", kafka.StartEarliest, kafka.StartLatest} {
		t.Run("start="+start, func(t *testing.T) {
			c := cfg(t)
			c.Start = start
			topic := testenv.Unique(t, "start")
			createTopic(t, c, topic, 1)
			produce(t, c, topic, "old-0", "old-1", "old-2")
			rec := &recorder{}
			stop := runGroup(t, c, kafka.GroupOptions{Group: testenv.Unique(t, "g"), Topics: []string{topic}}, rec)
			defer stop()
			// A group at the end sees only what comes after its first
			// fetch, whose moment the test cannot know: keep producing
			// until something arrives.
			for i := 0; len(rec.values()) == 0; i++ {
				if i == 100 {
					t.Fatal("nothing consumed in 10 s")
				}
				produce(t, c, topic, fmt.Sprintf("new-%d", i))
				time.Sleep(100 * time.Millisecond)
			}
			got := rec.values()
			sawOld := slices.ContainsFunc(got, func(v string) bool { return strings.HasPrefix(v, "old-") })
			if start == kafka.StartLatest && sawOld {
				t.Errorf("KAFKA_START=latest read records produced before the group existed: %q", got)
			}
			if start != kafka.StartLatest && (len(got) < 3 || strings.Join(got[:3], ",") != "old-0,old-1,old-2") {
				t.Errorf("KAFKA_START=%q read %q, want old-0, old-1, old-2 first", start, got)
			}
		})
	}
}

// TestConsumerSettingsFromEnv: KAFKA_START and the fetch sizes are read
// from the environment, and a bad value is refused naming its variable.
func TestConsumerSettingsFromEnv(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "127.0.0.1:1")
	t.Setenv("KAFKA_START", "latest")
	t.Setenv("KAFKA_FETCH_MAX_BYTES", "1048576")
	t.Setenv("KAFKA_FETCH_PARTITION_MAX_BYTES", "65536")
	c, err := kafka.ConfigFromEnv()
	if err != nil {
		t.Fatal(err)
	}
	if c.Start != "latest" || c.FetchMaxBytes != 1<<20 || c.FetchPartitionMaxBytes != 64<<10 {
		t.Errorf("from env: start %q, fetch %d, per partition %d", c.Start, c.FetchMaxBytes, c.FetchPartitionMaxBytes)
	}
	for _, tt := range []struct{ key, value, want string }{
		{"KAFKA_START", "newest", `KAFKA_START: "newest" is not one of earliest, latest`},
		{"KAFKA_START", "Earliest", `KAFKA_START: "Earliest" is not one of earliest, latest`},
		{"KAFKA_FETCH_MAX_BYTES", "lots", `KAFKA_FETCH_MAX_BYTES: "lots" is not an integer`},
		{"KAFKA_FETCH_MAX_BYTES", "-1", "KAFKA_FETCH_MAX_BYTES: -1 is out of range: 1 to 52428800 bytes"},
		{"KAFKA_FETCH_MAX_BYTES", "104857600", "KAFKA_FETCH_MAX_BYTES: 104857600 is out of range"},
		{"KAFKA_FETCH_PARTITION_MAX_BYTES", "-5", "KAFKA_FETCH_PARTITION_MAX_BYTES: -5 is out of range"},
		{"KAFKA_FETCH_PARTITION_MAX_BYTES", "2097152", "KAFKA_FETCH_PARTITION_MAX_BYTES: 2097152 is more than KAFKA_FETCH_MAX_BYTES (1048576)"},
	} {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			t.Setenv(tt.key, tt.value)
			if _, err := kafka.ConfigFromEnv(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
}
