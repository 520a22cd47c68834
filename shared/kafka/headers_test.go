package kafka_test

import (
	"slices"
	"testing"

	"github.com/IBM/sarama"

	"backinstock/shared/kafka"
)

// pair has the shape of topics/events.Header, which RecordHeaders converts.
type pair struct{ Key, Value string }

func TestHeaderCarrier(t *testing.T) {
	tests := []struct {
		name     string
		start    []pair
		set      []pair
		get      string
		want     string
		wantOK   bool
		wantKeys []string
	}{
		{name: "empty", get: "a", wantKeys: []string{}},
		{name: "get first of repeats", start: []pair{{"a", "1"}, {"b", "2"}, {"a", "3"}}, get: "a", want: "1", wantOK: true, wantKeys: []string{"a", "b", "a"}},
		{name: "empty value is present", start: []pair{{"a", ""}}, get: "a", want: "", wantOK: true, wantKeys: []string{"a"}},
		{name: "missing", start: []pair{{"a", "1"}}, get: "b", wantKeys: []string{"a"}},
		{name: "set appends", start: []pair{{"a", "1"}}, set: []pair{{"b", "2"}}, get: "b", want: "2", wantOK: true, wantKeys: []string{"a", "b"}},
		{name: "set replaces first", start: []pair{{"a", "1"}, {"a", "3"}}, set: []pair{{"a", "2"}}, get: "a", want: "2", wantOK: true, wantKeys: []string{"a", "a"}},
		{name: "set twice keeps one", set: []pair{{"t", "x"}, {"t", "y"}}, get: "t", want: "y", wantOK: true, wantKeys: []string{"t"}},
		{name: "keys are case sensitive", start: []pair{{"A", "1"}}, get: "a", wantKeys: []string{"A"}},
	}
	for _, tt := range tests {
		carriers := map[string]func() (kafka.HeaderCarrier, func() []pair){
			"producer": func() (kafka.HeaderCarrier, func() []pair) {
				m := &sarama.ProducerMessage{Headers: kafka.RecordHeaders(tt.start)}
				return kafka.ProducerHeaders(m), func() []pair {
					out := []pair{}
					for _, h := range m.Headers {
						out = append(out, pair{string(h.Key), string(h.Value)})
					}
					return out
				}
			},
			"consumer": func() (kafka.HeaderCarrier, func() []pair) {
				m := &sarama.ConsumerMessage{}
				for _, h := range kafka.RecordHeaders(tt.start) {
					m.Headers = append(m.Headers, &h)
				}
				return kafka.ConsumerHeaders(m), func() []pair {
					out := []pair{}
					for _, h := range m.Headers {
						out = append(out, pair{string(h.Key), string(h.Value)})
					}
					return out
				}
			},
		}
		for side, mk := range carriers {
			t.Run(tt.name+"/"+side, func(t *testing.T) {
				c, raw := mk()
				for _, p := range tt.set {
					c.Set(p.Key, p.Value)
				}
				got, ok := c.Lookup(tt.get)
				if got != tt.want || ok != tt.wantOK {
					t.Errorf("Lookup(%q) = %q, %v; want %q, %v", tt.get, got, ok, tt.want, tt.wantOK)
				}
				if g := c.Get(tt.get); g != tt.want {
					t.Errorf("Get(%q) = %q; want %q", tt.get, g, tt.want)
				}
				keys := c.Keys()
				if keys == nil {
					keys = []string{}
				}
				if !slices.Equal(keys, tt.wantKeys) {
					t.Errorf("Keys() = %q; want %q", keys, tt.wantKeys)
				}
				// The carrier writes through to the message itself.
				var rawKeys []string
				for _, p := range raw() {
					rawKeys = append(rawKeys, p.Key)
				}
				if rawKeys == nil {
					rawKeys = []string{}
				}
				if !slices.Equal(rawKeys, tt.wantKeys) {
					t.Errorf("message headers %q; want keys %q", raw(), tt.wantKeys)
				}
			})
		}
	}
}

func TestRecordHeaders(t *testing.T) {
	tests := []struct {
		name string
		in   []pair
		want []sarama.RecordHeader
	}{
		{name: "none", in: nil, want: []sarama.RecordHeader{}},
		{name: "in order", in: []pair{{"content-type", "application/json"}, {"schema", "X/1"}},
			want: []sarama.RecordHeader{{Key: []byte("content-type"), Value: []byte("application/json")}, {Key: []byte("schema"), Value: []byte("X/1")}}},
		{name: "empty value", in: []pair{{"k", ""}}, want: []sarama.RecordHeader{{Key: []byte("k"), Value: []byte{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := kafka.RecordHeaders(tt.in)
			if len(got) != len(tt.want) {
				t.Fatalf("got %d headers, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if string(got[i].Key) != string(tt.want[i].Key) || string(got[i].Value) != string(tt.want[i].Value) {
					t.Errorf("header %d = %s=%s; want %s=%s", i, got[i].Key, got[i].Value, tt.want[i].Key, tt.want[i].Value)
				}
			}
		})
	}
}

func TestHeaderCarrierDoesNotAllocate(t *testing.T) {
	m := &sarama.ConsumerMessage{Headers: []*sarama.RecordHeader{{Key: []byte("traceparent"), Value: []byte("00-x")}}}
	n := testing.AllocsPerRun(100, func() {
		if _, ok := kafka.ConsumerHeaders(m).Lookup("schema"); ok {
			t.Fatal("found a missing header")
		}
	})
	if n != 0 {
		t.Errorf("a lookup of a missing header allocated %v times", n)
	}
}
