package pipeline

import (
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"backinstock/topics/events"
)

// TestDecodeRefusesMisKeyedRecords: the key of a notify record is its user
// id; any other key, null included, is dead-lettered with a reason naming
// both, as the fan-out does for a restock keyed other than by its sku.
func TestDecodeRefusesMisKeyedRecords(t *testing.T) {
	const region = "us-east-1"
	n := events.Notification{
		NotificationID: events.NotificationID("pn8other", "sku-1", region, 1, events.ChannelApp),
		RestockEventID: events.RestockEventID("sku-1", region, 1),
		UserID:         "pn8other", SKU: "sku-1", Region: region, Channel: events.ChannelApp, Episode: 1,
		Title: "t", Body: "b", URL: "https://shop.example/p/sku-1", CreatedAt: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC),
	}
	v, err := events.Encode(n)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		key   []byte
		value string
		want  string // "" accepts
	}{
		{"key is the user id", []byte("pn8other"), string(v), ""},
		{"null key", nil, string(v), `record key is null, not the notification's user_id "pn8other"`},
		{"empty key", []byte{}, string(v), `record key "" is not the notification's user_id "pn8other"`},
		{"key of another user", []byte("pn8"), string(v), `record key "pn8" is not the notification's user_id "pn8other"`},
		{"key in another case", []byte("PN8OTHER"), string(v), `record key "PN8OTHER" is not the notification's user_id "pn8other"`},
		{"duplicate user_id", []byte("pn8other"), strings.Replace(string(v), `"user_id":"pn8other"`, `"user_id":"pn8other","user_id":"pn8"`, 1), "user_id: duplicate key"},
	}
	p := New(Options{Region: region})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := p.decode(&sarama.ConsumerMessage{Key: tt.key, Value: []byte(tt.value)}, events.ChannelApp)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("decode refused a well-keyed record: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("decode = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
