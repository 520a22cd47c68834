package kafka_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
)

// TestPartitionerHashesLikeJava checks the hash against the vectors of
// Kafka's own UtilsTest.testMurmur2 (signed, as Utils.murmur2 returns
// them). With math.MaxInt32 partitions the partition is toPositive(h)
// itself (no positive value here reaches MaxInt32), so the whole hash is
// compared, not just its remainder.
func TestPartitionerHashesLikeJava(t *testing.T) {
	for _, tc := range []struct {
		key  string
		java int32
	}{
		{"21", -973932308},
		{"foobar", -790332482},
		{"a-little-bit-long-string", -985981536},
		{"a-little-bit-longer-string", -1486304829},
		{"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971},
		{"abc", 479470107},
	} {
		got, err := kafka.NewPartitioner("t").Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(tc.key)}, math.MaxInt32)
		if err != nil {
			t.Fatal(err)
		}
		if want := tc.java & 0x7fffffff; got != want {
			t.Errorf("key %q: partition %d, want toPositive(%d) = %d", tc.key, got, tc.java, want)
		}
	}
}

// TestPartitionerNilKeyIsRandom: a record without a key is spread, as the
// Java client and murmur2_random spread them, not pinned to one partition.
func TestPartitionerNilKeyIsRandom(t *testing.T) {
	p := kafka.NewPartitioner("t")
	seen := map[int32]bool{}
	for range 200 {
		n, err := p.Partition(&sarama.ProducerMessage{}, 12)
		if err != nil || n < 0 || n >= 12 {
			t.Fatalf("partition %d, %v", n, err)
		}
		seen[n] = true
	}
	if len(seen) < 6 {
		t.Fatalf("200 records without a key reached only %d of 12 partitions", len(seen))
	}
}

// kcatKeys is the number of keys compared with kcat: enough that every
// partition gets hundreds and every key-length tail (0-3 bytes) occurs.
const kcatKeys = 10_000

// TestPartitionerMatchesKcat produces kcatKeys keys with kcat (librdkafka,
// -X partitioner=murmur2_random) and the same keys with our producer, and
// checks that each key sits on the same partition in both topics and on
// the one NewPartitioner names. CI must have kcat (.ci/run installs it):
// with CI set, a missing kcat fails the test instead of skipping it.
func TestPartitionerMatchesKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("kcat is not on PATH, and CI must run this test: install the Debian package kcat (.ci/run does)")
		}
		t.Skip("kcat is not on PATH (apt-get install kcat): the partition comparison with librdkafka's murmur2_random is not run")
	}
	c := cfg(t)
	const parts = 12
	theirs, ours := "interop.kcat."+t.Name(), "interop.ours."+t.Name()
	createTopic(t, c, theirs, parts)
	createTopic(t, c, ours, parts)

	// Keys of the shapes our topics carry (user ids, skus, user|sku) and
	// random ones of every length up to 64 from the id alphabet. '=' is
	// kcat's key delimiter, so no key holds one.
	rng := rand.New(rand.NewPCG(16, 5))
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-|"
	keys := make([]string, kcatKeys)
	for i := range keys {
		switch i % 4 {
		case 0:
			keys[i] = fmt.Sprintf("user-%05d", i)
		case 1:
			keys[i] = fmt.Sprintf("user-%d|sku-%d", i, rng.IntN(1000))
		default:
			b := make([]byte, 1+rng.IntN(64))
			for j := range b {
				b[j] = alphabet[rng.IntN(len(alphabet))]
			}
			keys[i] = fmt.Sprintf("%s.%d", b, i) // unique
		}
	}

	var in bytes.Buffer
	for _, k := range keys {
		fmt.Fprintf(&in, "%s=%s\n", k, k)
	}
	cmd := exec.CommandContext(t.Context(), kcat, "-P", "-b", c.Brokers[0], "-t", theirs, "-K", "=",
		"-X", "partitioner=murmur2_random", "-X", "acks=all")
	cmd.Stdin = &in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}

	p, err := kafka.NewProducer(c, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]*sarama.ProducerMessage, len(keys))
	for i, k := range keys {
		msgs[i] = &sarama.ProducerMessage{Topic: ours, Key: sarama.StringEncoder(k), Value: sarama.StringEncoder(k)}
	}
	if err := p.SendAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}

	sc, err := c.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	// ReadTopic reads partition after partition: short fetch waits keep
	// the 24 reads within a second.
	sc.Consumer.MaxWaitTime = 10 * time.Millisecond
	cl, err := sarama.NewClient(c.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	where := func(topic string) map[string]int32 {
		m := map[string]int32{}
		testenv.ReadTopic(t, cl, topic, func(r *sarama.ConsumerMessage) { m[string(r.Key)] = r.Partition })
		return m
	}
	kcatAt, oursAt := where(theirs), where(ours)
	if len(kcatAt) != len(keys) || len(oursAt) != len(keys) {
		t.Fatalf("read %d keys written by kcat and %d by us, want %d each", len(kcatAt), len(oursAt), len(keys))
	}

	np, fnv := kafka.NewPartitioner(theirs), sarama.NewHashPartitioner(theirs)
	var wrong []string
	fnvAgrees := 0
	for _, k := range keys {
		msg := &sarama.ProducerMessage{Key: sarama.StringEncoder(k)}
		want, _ := np.Partition(msg, parts)
		if kcatAt[k] != want || oursAt[k] != want {
			wrong = append(wrong, fmt.Sprintf("%q: kcat %d, our producer %d, NewPartitioner %d", k, kcatAt[k], oursAt[k], want))
		}
		if f, _ := fnv.Partition(msg, parts); f == kcatAt[k] {
			fnvAgrees++
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d keys on another partition than kcat's murmur2_random, e.g.\n%s", len(wrong), len(keys), strings.Join(wrong[:min(10, len(wrong))], "\n"))
	}
	// The comparison can tell partitioners apart: sarama's default FNV-1a
	// agrees with kcat only by chance (about 1 key in 12).
	if fnvAgrees > len(keys)/4 {
		t.Fatalf("sarama's FNV-1a partitioner agreed with kcat on %d of %d keys: the comparison does not discriminate", fnvAgrees, len(keys))
	}
	t.Logf("%d keys: kcat, our producer and NewPartitioner agree on every one (FNV-1a would agree on %d)", len(keys), fnvAgrees)
}
