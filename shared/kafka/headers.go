package kafka

import "github.com/IBM/sarama"

// HeaderCarrier reads and writes one record's headers by string key, in the
// shape of OpenTelemetry's propagation.TextMapCarrier (and franz-go's kotel
// carrier), so trace context and contract headers go through one type
// whichever side of sarama the record is on. It holds a pointer to the
// message's header slice and nothing else: building one does not allocate.
type HeaderCarrier struct {
	produced *[]sarama.RecordHeader
	consumed *[]*sarama.RecordHeader
}

// ProducerHeaders is the carrier over a record about to be produced.
func ProducerHeaders(m *sarama.ProducerMessage) HeaderCarrier {
	return HeaderCarrier{produced: &m.Headers}
}

// ConsumerHeaders is the carrier over a consumed record.
func ConsumerHeaders(m *sarama.ConsumerMessage) HeaderCarrier {
	return HeaderCarrier{consumed: &m.Headers}
}

// Get is the value of the first header named key, "" when there is none.
func (c HeaderCarrier) Get(key string) string {
	v, _ := c.Lookup(key)
	return v
}

// Lookup is Get that also tells an empty value from a missing header.
func (c HeaderCarrier) Lookup(key string) (string, bool) {
	if c.produced != nil {
		for _, h := range *c.produced {
			if string(h.Key) == key {
				return string(h.Value), true
			}
		}
	}
	if c.consumed != nil {
		for _, h := range *c.consumed {
			if h != nil && string(h.Key) == key {
				return string(h.Value), true
			}
		}
	}
	return "", false
}

// Set replaces the value of the first header named key, or appends one:
// Kafka allows repeated keys, but a carrier's reader (Get) sees only the
// first, so a second copy would be written and never read.
func (c HeaderCarrier) Set(key, value string) {
	if c.produced != nil {
		for i := range *c.produced {
			if string((*c.produced)[i].Key) == key {
				(*c.produced)[i].Value = []byte(value)
				return
			}
		}
		*c.produced = append(*c.produced, sarama.RecordHeader{Key: []byte(key), Value: []byte(value)})
	}
	if c.consumed != nil {
		for _, h := range *c.consumed {
			if h != nil && string(h.Key) == key {
				h.Value = []byte(value)
				return
			}
		}
		*c.consumed = append(*c.consumed, &sarama.RecordHeader{Key: []byte(key), Value: []byte(value)})
	}
}

// Keys lists the header keys in record order, repeats included.
func (c HeaderCarrier) Keys() []string {
	var keys []string
	if c.produced != nil {
		keys = make([]string, 0, len(*c.produced))
		for _, h := range *c.produced {
			keys = append(keys, string(h.Key))
		}
	}
	if c.consumed != nil {
		keys = make([]string, 0, len(*c.consumed))
		for _, h := range *c.consumed {
			if h != nil {
				keys = append(keys, string(h.Key))
			}
		}
	}
	return keys
}

// RecordHeaders converts key/value pairs (topics/events.Headers; any struct
// of two strings, Key and Value) to sarama headers, in one allocation for
// the slice. The type parameter stands in for events.Header because the
// topics module depends on shared, not the other way round.
func RecordHeaders[H ~struct{ Key, Value string }](hs []H) []sarama.RecordHeader {
	out := make([]sarama.RecordHeader, len(hs))
	for i, h := range hs {
		kv := struct{ Key, Value string }(h)
		out[i] = sarama.RecordHeader{Key: []byte(kv.Key), Value: []byte(kv.Value)}
	}
	return out
}
