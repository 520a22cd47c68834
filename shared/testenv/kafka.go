package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
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

// FreePort returns a 127.0.0.1 port no other test process of this machine
// holds. The kernel's "port 0" is not enough: the port is free only until
// the caller binds it, and in between the kernel may hand it to an outgoing
// connection (it comes from the same ephemeral range) or to a test in
// another package running in parallel. So ports come from below the
// ephemeral range (outgoing connections never take them), and each is
// claimed with a file in a directory every test process shares; a claim of
// a process that has exited is taken over.
func FreePort() (int, error) {
	if err := os.MkdirAll(portClaims, 0o777); err == nil {
		for range 500 {
			// 30000-32767: under the ephemeral range (32768-60999), above
			// the local stack's fixed ports (devstack, the browser test).
			p := 30000 + rand.IntN(2768)
			if !claimPort(p) {
				continue
			}
			if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
				_ = ln.Close()
				return p, nil
			}
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var portClaims = filepath.Join(os.TempDir(), "backinstock-test-ports")

// claimPort creates the port's claim file holding this pid, or takes over a
// claim whose process is gone.
// FreePortRange returns the first of n consecutive 127.0.0.1 ports that no
// other test process holds, for a stack that numbers its services from a
// base port (devstack's --http-port-base), failing tb if there are none.
// Like FreePort's, they come from below the ephemeral range, where no
// outgoing connection can take one between the check and the bind (a range
// picked from 20000-60000 once lost a gateway's port that way), and are
// claimed; 10000-29999 keeps them apart from FreePort's.
func FreePortRange(tb testing.TB, n int) int {
	tb.Helper()
	if err := os.MkdirAll(portClaims, 0o777); err != nil {
		tb.Fatalf("free port range: %v", err)
	}
	for range 200 {
		base := 10000 + rand.IntN(20000-n)
		ok := true
		for p := base; p < base+n && ok; p++ {
			if ok = claimPort(p); ok {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
				if ok = err == nil; ok {
					_ = ln.Close()
				}
			}
		}
		if ok {
			return base
		}
	}
	tb.Fatalf("no %d consecutive free ports in 10000-29999", n)
	return 0
}

func claimPort(p int) bool {
	path := filepath.Join(portClaims, strconv.Itoa(p))
	for range 2 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
		if err == nil {
			_, _ = f.WriteString(strconv.Itoa(os.Getpid()))
			_ = f.Close()
			return true
		}
		data, rerr := os.ReadFile(path)
		pid, perr := strconv.Atoi(string(data))
		if rerr != nil || perr != nil || pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			return false // held by a live process (or half-written: leave it)
		}
		_ = os.Remove(path) // its process has exited
	}
	return false
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
