package app

import (
	"strings"
	"testing"

	"backinstock/shared/config"
)

// TestConfigDefaultsAreWrittenOnce checks that the flag defaults and the
// zero-field defaults are the same values, and that a bad value is refused
// by name instead of replaced.
func TestConfigDefaultsAreWrittenOnce(t *testing.T) {
	var flagged Config
	s := config.NewSet("notifier run")
	flagged.Bind(s)
	if err := s.Parse([]string{"--region", "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	// Connections are required, not defaulted, for an in-process caller.
	zero := Config{Kafka: flagged.Kafka, Region: "eu-west-1", RedisURL: flagged.RedisURL, NATSURL: flagged.NATSURL}
	zero.setDefaults()
	flagged.setDefaults()
	zero.Now, flagged.Now = nil, nil
	for _, c := range []Config{zero, flagged} {
		if err := c.Validate(); err != nil {
			t.Fatalf("defaults do not validate: %v", err)
		}
	}
	// The fields setDefaults fills must come out as the flags' defaults.
	if zero.MarkerTTL != flagged.MarkerTTL || zero.DuplicateWindow != flagged.DuplicateWindow || zero.StreamMaxAge != flagged.StreamMaxAge ||
		zero.MaxBatch != flagged.MaxBatch || zero.PublishTimeout != flagged.PublishTimeout || zero.MaxPending != flagged.MaxPending ||
		zero.ReleaseInterval != flagged.ReleaseInterval || zero.DeadLetterTopic != flagged.DeadLetterTopic ||
		zero.StockReadyTimeout != flagged.StockReadyTimeout || zero.EdgeTokenTTL != flagged.EdgeTokenTTL || zero.EdgeMaxConnsPerUser != flagged.EdgeMaxConnsPerUser ||
		zero.CrashAfterN != flagged.CrashAfterN || zero.Group != flagged.Group || strings.Join(zero.Channels, ",") != strings.Join(flagged.Channels, ",") {
		t.Fatalf("zero-field defaults differ from flag defaults:\n%+v\n%+v", zero, flagged)
	}
}

func TestConfigRefusesBadValuesByName(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--max-batch", "-1"}, "NOTIFIER_MAX_BATCH"},
		{[]string{"--max-batch", "0"}, "NOTIFIER_MAX_BATCH"},
		{[]string{"--max-pending", "-5"}, "NOTIFIER_MAX_PENDING"},
		{[]string{"--edge-connections", "-2"}, "NOTIFIER_EDGE_CONNECTIONS"},
		{[]string{"--publish-timeout", "-1s"}, "NOTIFIER_PUBLISH_TIMEOUT"},
		{[]string{"--release-interval", "0s"}, "NOTIFIER_RELEASE_INTERVAL"},
		{[]string{"--edge-token-ttl", "-1m"}, "EDGE_TOKEN_TTL"},
		{[]string{"--linger", "-1ms"}, "NOTIFIER_LINGER"},
		{[]string{"--stream-replicas", "-1"}, "EDGE_REPLICAS"},
		{[]string{"--edge-max-conns-per-user", "0"}, "EDGE_MAX_CONNS_PER_USER"},
		{[]string{"--edge-max-conns-per-user", "-3"}, "EDGE_MAX_CONNS_PER_USER"},
		{[]string{"--edge-system-creds", "sys.creds"}, "EDGE_ACCOUNT_SEED_FILE"},
		{[]string{"--edge-operator-seed-file", "op.nk"}, "EDGE_SYSTEM_CREDS"},
		{[]string{"--group-instance-id", "pod/1"}, "KAFKA_GROUP_INSTANCE_ID"},
	}
	if crashHooks { // the flag exists in crash-test builds only
		tests = append(tests, struct {
			args []string
			want string
		}{[]string{"--crash-after-n", "-2"}, "NOTIFIER_CRASH_AFTER_N"})
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var c Config
			s := config.NewSet("notifier run")
			c.Bind(s)
			if err := s.Parse(append([]string{"--region", "eu-west-1"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want an error naming %s", err, tt.want)
			}
			// Run's order: defaults for zero fields, then Validate; a value
			// given explicitly is never replaced.
			c.setDefaults()
			if err := c.Validate(); tt.args[1] != "0" && tt.args[1] != "0s" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("after setDefaults Validate() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

// A build without the crash hook refuses CrashAt set in-process rather than
// silently never crashing (the crash tests would pass vacuously).
func TestCrashAtNeedsTheCrashHookBuild(t *testing.T) {
	if crashHooks {
		t.Skip("this build has the crash hook")
	}
	c := Config{Region: "eu-west-1", CrashAt: "after-mark"}
	c.setDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "NOTIFIER_CRASH_AT") {
		t.Fatalf("Validate() = %v, want an error naming NOTIFIER_CRASH_AT", err)
	}
}

// The command line's path: every field holds its flag's value and Validate
// runs without setDefaults. The defaults alone must pass, in this build
// whichever it is (a production build binds no crash flags).
func TestFlagDefaultsValidate(t *testing.T) {
	var c Config
	s := config.NewSet("notifier run")
	c.Bind(s)
	if err := s.Parse([]string{"--region", "eu-west-1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the flag defaults do not validate: %v", err)
	}
}
