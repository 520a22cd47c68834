package testenv

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
)

// Kafka is an in-process kfake cluster speaking the real Kafka protocol.
type Kafka struct {
	Cluster *kfake.Cluster
	Brokers []string
}

// StartKafka starts a cluster of n brokers on free 127.0.0.1 ports; extra
// options (SASL, data dir) pass through.
func StartKafka(n int, opts ...kfake.Opt) (*Kafka, error) {
	ports := make([]int, n)
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return StartKafkaOnPorts(ports, opts...)
}

// StartKafkaOnPorts starts one broker per port, listening on 127.0.0.1 only.
func StartKafkaOnPorts(ports []int, opts ...kfake.Opt) (*Kafka, error) {
	all := append([]kfake.Opt{
		kfake.NumBrokers(len(ports)),
		kfake.Ports(ports...),
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, port, _ := net.SplitHostPort(addr)
			return net.Listen(network, "127.0.0.1:"+port)
		}),
	}, opts...)
	c, err := kfake.NewCluster(all...)
	if err != nil {
		return nil, fmt.Errorf("kfake: %w", err)
	}
	return &Kafka{Cluster: c, Brokers: c.ListenAddrs()}, nil
}

// BrokerList is the comma-separated form KAFKA_BROKERS takes.
func (k *Kafka) BrokerList() string { return strings.Join(k.Brokers, ",") }

// Close stops the cluster.
func (k *Kafka) Close() { k.Cluster.Close() }

// FreePort asks the kernel for an unused 127.0.0.1 port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ReadTopic hands fn every record of topic, from each partition's oldest
// offset to its end at the time of the call, failing tb if a partition does
// not deliver that far within a minute.
func ReadTopic(tb testing.TB, cl sarama.Client, topic string, fn func(m *sarama.ConsumerMessage)) {
	tb.Helper()
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		tb.Fatal(err)
	}
	defer cons.Close()
	parts, err := cl.Partitions(topic)
	if err != nil {
		tb.Fatal(err)
	}
	for _, p := range parts {
		start, err := cl.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			tb.Fatal(err)
		}
		end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			tb.Fatal(err)
		}
		if end <= start {
			continue
		}
		pc, err := cons.ConsumePartition(topic, p, start)
		if err != nil {
			tb.Fatal(err)
		}
		timeout := time.After(time.Minute)
	read:
		for {
			select {
			case m := <-pc.Messages():
				fn(m)
				if m.Offset+1 >= end {
					break read
				}
			case <-timeout:
				pc.AsyncClose()
				tb.Fatalf("read %s/%d: timed out before offset %d", topic, p, end)
			}
		}
		pc.AsyncClose()
	}
}
