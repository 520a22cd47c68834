package e2eenv

import (
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"

	"backinstock/shared/testenv"
)

// Kafka is the kfake cluster with what a broker restart needs: kfake's
// RemoveNode only closes the broker's listener, so connections the clients
// already hold would keep working. The listeners here remember what they
// accepted, and StopBroker closes those too, as a dying broker process does.
type Kafka struct {
	*testenv.Kafka
	ports []int

	mu    sync.Mutex
	conns map[int]map[net.Conn]struct{} // by port
}

// StartKafka starts n brokers on free ports.
func StartKafka(n int) (*Kafka, error) {
	k := &Kafka{conns: map[int]map[net.Conn]struct{}{}}
	for range n {
		p, err := testenv.FreePort()
		if err != nil {
			return nil, err
		}
		k.ports = append(k.ports, p)
	}
	tk, err := testenv.StartKafkaOnPorts(k.ports, kfake.ListenFn(k.listen))
	if err != nil {
		return nil, err
	}
	k.Kafka = tk
	return k, nil
}

func (k *Kafka) listen(network, addr string) (net.Listener, error) {
	_, ps, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(ps)
	ln, err := net.Listen(network, "127.0.0.1:"+ps)
	if err != nil {
		return nil, err
	}
	return &trackedListener{Listener: ln, k: k, port: port}, nil
}

type trackedListener struct {
	net.Listener
	k    *Kafka
	port int
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.k.mu.Lock()
	m := l.k.conns[l.port]
	if m == nil {
		m = map[net.Conn]struct{}{}
		l.k.conns[l.port] = m
	}
	m[c] = struct{}{}
	l.k.mu.Unlock()
	return c, nil
}

// Ports are the brokers' ports; broker i (node id i) listens on Ports()[i].
func (k *Kafka) Ports() []int { return k.ports }

// StopBroker takes node id down: its listener closes (new connections are
// refused), every connection it accepted is cut, and its partitions move to
// the remaining brokers. The data stays (kfake keeps one log for all nodes).
func (k *Kafka) StopBroker(id int32) error {
	if err := k.Cluster.RemoveNode(id); err != nil {
		return fmt.Errorf("stop broker %d: %w", id, err)
	}
	port := k.ports[id]
	k.mu.Lock()
	for c := range k.conns[port] {
		_ = c.Close()
	}
	delete(k.conns, port)
	k.mu.Unlock()
	return nil
}

// StartBroker brings node id back on its old port.
func (k *Kafka) StartBroker(id int32) error {
	if _, _, err := k.Cluster.AddNode(id, k.ports[id]); err != nil {
		return fmt.Errorf("start broker %d: %w", id, err)
	}
	return nil
}
