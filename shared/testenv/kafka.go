package testenv

import (
	"fmt"
	"net"
	"strings"

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
