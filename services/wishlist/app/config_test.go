package app_test

import (
	"strings"
	"testing"

	"backinstock/services/wishlist/app"
	"backinstock/shared/config"
)

// TestFanoutInstanceID: KAFKA_GROUP_INSTANCE_ID is optional, and a value
// Kafka would refuse is named at start-up.
func TestFanoutInstanceID(t *testing.T) {
	tests := []struct {
		id   string
		want string // "" for valid
	}{
		{"", ""},
		{"wishlist-fanout-7c9f5d-x2kq8", ""},
		{"pod/1", "KAFKA_GROUP_INSTANCE_ID"},
		{strings.Repeat("a", 250), "KAFKA_GROUP_INSTANCE_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			var c app.Config
			s := config.NewSet("wishlist fanout")
			c.Bind(s)
			c.BindFanout(s)
			if err := s.Parse([]string{"--region", "us-east-1", "--group-instance-id", tt.id}); err != nil {
				t.Fatal(err)
			}
			err := c.ValidateFanout()
			if tt.want == "" && err != nil {
				t.Fatalf("ValidateFanout() = %v", err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("ValidateFanout() = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}
