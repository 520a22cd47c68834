package events_test

import (
	"encoding/json"
	"testing"

	"backinstock/topics/events"
)

// BenchmarkDecodeNotification measures the notifier's per-record decode
// cost, against plain encoding/json for scale.
func BenchmarkDecodeNotification(b *testing.B) {
	data, err := events.Encode(validNotification())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("strict", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := events.DecodeNotification(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var n events.Notification
			if err := json.Unmarshal(data, &n); err != nil {
				b.Fatal(err)
			}
		}
	})
}
