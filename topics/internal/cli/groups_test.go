package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/shared/kafka"
	"backinstock/topics/internal/cli"
)

// scripted is a topic of parts partitions, each holding n records whose
// timestamps are base, base+1m, ... base+(n-1)m.
type scripted struct {
	brokers string
	cfg     kafka.Config
	topic   string
	base    time.Time
	parts   int32
	n       int
}

func newScripted(t *testing.T, parts int32, n int) scripted {
	t.Helper()
	isolate(t)
	for _, k := range []string{"KAFKA_COMPRESSION", "KAFKA_START", "KAFKA_FETCH_MAX_BYTES", "KAFKA_FETCH_PARTITION_MAX_BYTES"} {
		t.Setenv(k, "")
	}
	brokers := cluster(t, 1)
	s := scripted{
		brokers: brokers,
		cfg:     kafka.Config{Brokers: strings.Split(brokers, ",")},
		topic:   "groups.scripted.v1",
		base:    time.Now().Add(-time.Hour).Truncate(time.Second).UTC(),
		parts:   parts,
		n:       n,
	}
	adm, err := kafka.NewClusterAdmin(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	if err := adm.CreateTopic(s.topic, &sarama.TopicDetail{NumPartitions: parts, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	sc, err := kafka.SaramaProducerConfig(s.cfg, kafka.ProducerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(s.cfg.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []*sarama.ProducerMessage
	for part := range parts {
		for i := range n {
			msgs = append(msgs, &sarama.ProducerMessage{Topic: s.topic, Partition: part, Timestamp: s.at(i),
				Value: sarama.StringEncoder(fmt.Sprintf("p%d-r%d", part, i))})
		}
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
	return s
}

// at is the timestamp of each partition's i-th record.
func (s scripted) at(i int) time.Time { return s.base.Add(time.Duration(i) * time.Minute) }

// committed reads the group's offsets with sarama directly, not through
// the code under test.
func (s scripted) committed(t *testing.T, group string) map[int32]int64 {
	t.Helper()
	adm, err := kafka.NewClusterAdmin(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	parts := make([]int32, s.parts)
	for i := range parts {
		parts[i] = int32(i)
	}
	out := map[int32]int64{}
	resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{s.topic: parts})
	if errors.Is(err, sarama.ErrGroupIDNotFound) { // kfake, before the group's first join or commit
		return out
	}
	if err != nil {
		t.Fatal(err)
	}
	for p, b := range resp.Blocks[s.topic] {
		if b.Offset >= 0 {
			out[p] = b.Offset
		}
	}
	return out
}

// consume runs a service's consumer group (kafka.Group) on the topic until
// it has committed want records per partition, and returns a stop
// function; stopped, the group is empty.
func (s scripted) consume(t *testing.T, group string, upTo int64) (stop func()) {
	t.Helper()
	var mu sync.Mutex
	seen := 0
	g, err := kafka.NewGroup(s.cfg, kafka.GroupOptions{Group: group, Topics: []string{s.topic}},
		kafka.HandlerFunc(func(_ context.Context, b *kafka.Batch) error {
			mu.Lock()
			seen += len(b.Records)
			mu.Unlock()
			return nil
		}), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("group run: %v", err)
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := s.committed(t, group)
		ok := len(c) == int(s.parts)
		for _, off := range c {
			ok = ok && off >= upTo
		}
		if ok {
			return stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s committed %v, want %d on each of %d partitions", group, c, upTo, s.parts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (s scripted) run(t *testing.T, args ...string) result {
	t.Helper()
	return run(t, append(args, "--brokers", s.brokers)...)
}

func TestGroupsUsage(t *testing.T) {
	isolate(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"groups", "--help"}, cli.ExitOK, "Usage: topics groups <command>"},
		{[]string{"groups"}, cli.ExitUsage, "a command is required"},
		{[]string{"groups", "frob"}, cli.ExitUsage, `unknown command "frob"`},
		{[]string{"groups", "list", "--help"}, cli.ExitOK, "-json"},
		{[]string{"groups", "describe", "--help"}, cli.ExitOK, "Usage: topics groups describe <group>"},
		{[]string{"groups", "describe"}, cli.ExitUsage, "a group name is required"},
		{[]string{"groups", "describe", "a", "b"}, cli.ExitUsage, "unexpected arguments: b"},
		{[]string{"groups", "reset", "--help"}, cli.ExitOK, "-to-datetime"},
		{[]string{"groups", "reset", "g", "--to-latest"}, cli.ExitUsage, "--topic is required"},
		{[]string{"groups", "reset", "g", "--topic", "t"}, cli.ExitUsage, "exactly one of --to-earliest"},
		{[]string{"groups", "reset", "g", "--topic", "t", "--to-latest", "--to-earliest"}, cli.ExitUsage, "exactly one of --to-earliest"},
		{[]string{"groups", "reset", "g", "--topic", "t", "--to-datetime", "yesterday"}, cli.ExitUsage, `--to-datetime: "yesterday" is not an RFC 3339 time`},
		{[]string{"groups", "reset", "g", "--topic", "t", "--to-offset", "0=5"}, cli.ExitUsage, `--to-offset: "0=5" is not partition:offset`},
		{[]string{"groups", "reset", "g", "--topic", "t", "--to-offset", "0:5,0:6"}, cli.ExitUsage, "partition 0 is given twice"},
		{[]string{"groups", "reset", "g", "--topic", "t", "--to-offset", "0:-1"}, cli.ExitUsage, `offset "-1" is not a number of 0 or more`},
		{[]string{"groups", "list", "--brokers", "no-port"}, cli.ExitUsage, `"no-port" is not host:port`},
		{[]string{"groups", "list", "--kafka-start", "middle", "--brokers", "a:1"}, cli.ExitUsage, `KAFKA_START: "middle" is not one of earliest, latest`},
	}
	for _, tt := range tests {
		r := run(t, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.want) {
			t.Errorf("topics %v: exit %d, output %q; want exit %d and %q", tt.args, r.code, r.stdout+r.stderr, tt.code, tt.want)
		}
	}
}

// TestGroupsListAndDescribeShowLag: a group committed on two of three
// partitions, list and describe show each partition's committed offset,
// end and lag; a running member shows with the partitions it holds.
func TestGroupsListAndDescribeShowLag(t *testing.T) {
	s := newScripted(t, 3, 10)
	const group = "lag.test"
	// Position the group with a plain admin commit, as another tool would.
	cl, err := kafka.NewClient(s.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	req := sarama.NewOffsetCommitRequest(cl.Config(), group)
	req.AddBlock(s.topic, 0, 4, 0, "")
	req.AddBlock(s.topic, 1, 10, 0, "")
	coord, err := cl.Coordinator(group)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := coord.CommitOffset(req); err != nil || resp.Errors[s.topic][0] != sarama.ErrNoError {
		t.Fatalf("commit: %v %+v", err, resp)
	}

	r := s.run(t, "groups", "list")
	if r.code != cli.ExitOK {
		t.Fatalf("list: exit %d\n%s", r.code, r.stderr)
	}
	for _, re := range []string{
		`(?m)^GROUP\s+STATE\s+MEMBERS\s+TOPIC\s+PARTITION\s+COMMITTED\s+END\s+LAG$`,
		`(?m)^lag\.test\s+Empty\s+0\s+groups\.scripted\.v1\s+0\s+4\s+10\s+6$`,
		`(?m)^lag\.test\s+Empty\s+0\s+groups\.scripted\.v1\s+1\s+10\s+10\s+0$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("list output does not match %s:\n%s", re, r.stdout)
		}
	}
	if regexp.MustCompile(`(?m)^lag\.test\s+\S+\s+\d+\s+groups\.scripted\.v1\s+2\s`).MatchString(r.stdout) {
		t.Errorf("list shows partition 2, where the group committed nothing and no member holds it:\n%s", r.stdout)
	}

	r = s.run(t, "groups", "list", "--json")
	var groups []struct {
		Group      string
		State      string
		Partitions []struct {
			Partition int32
			Committed *int64
			End       int64
			Lag       *int64
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &groups); err != nil || len(groups) != 1 || len(groups[0].Partitions) != 2 {
		t.Fatalf("list --json: %v\n%s", err, r.stdout)
	}
	if p := groups[0].Partitions[0]; *p.Committed != 4 || p.End != 10 || *p.Lag != 6 {
		t.Errorf("list --json partition 0: committed %d end %d lag %d, want 4 10 6", *p.Committed, p.End, *p.Lag)
	}

	r = s.run(t, "groups", "describe", group)
	for _, re := range []string{`(?m)^STATE\s+Empty$`, `(?m)^MEMBERS\s+0$`, `(?m)^groups\.scripted\.v1\s+0\s+4\s+10\s+6\s+-$`} {
		if r.code != cli.ExitOK || !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("describe: exit %d, output does not match %s:\n%s%s", r.code, re, r.stdout, r.stderr)
		}
	}
	if r := s.run(t, "groups", "describe", "no.such.group"); r.code != cli.ExitError || !strings.Contains(r.stderr, "group no.such.group does not exist") {
		t.Errorf("describe of a missing group: exit %d\n%s", r.code, r.stderr)
	}

	// A live member: describe names it, the partitions it holds, and
	// itself as each partition's member.
	s.consume(t, "live.test", 10)
	r = s.run(t, "groups", "describe", "live.test")
	for _, re := range []string{`(?m)^STATE\s+Stable$`, `(?m)^MEMBERS\s+1$`, `(?m)^PROTOCOL\s+consumer/sticky$`,
		`groups\.scripted\.v1/0,groups\.scripted\.v1/1,groups\.scripted\.v1/2`,
		`(?m)^groups\.scripted\.v1\s+2\s+10\s+10\s+0\s+\S+$`} {
		if r.code != cli.ExitOK || !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("describe of a live group: exit %d, output does not match %s:\n%s%s", r.code, re, r.stdout, r.stderr)
		}
	}
}

// TestGroupsResetMovesAStoppedGroupExactly: a group that read everything
// and stopped is moved to a time, then to exact offsets on some
// partitions; each reset leaves exactly the planned offsets (read back with
// sarama); a dry run changes nothing; a running group is refused.
func TestGroupsResetMovesAStoppedGroupExactly(t *testing.T) {
	s := newScripted(t, 3, 10)
	const group = "reset.test"
	stop := s.consume(t, group, 10)
	stop()
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 10, 1: 10, 2: 10}) {
		t.Fatalf("after consuming: committed %v", got)
	}

	// --to-datetime between records 4 and 5: the first record at or after it is 5.
	at := s.at(4).Add(30 * time.Second).Format(time.RFC3339)
	r := s.run(t, "groups", "reset", group, "--topic", s.topic, "--to-datetime", at, "--dry-run")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "dry run: group reset.test unchanged") ||
		!regexp.MustCompile(`(?m)^reset\.test\s+groups\.scripted\.v1\s+1\s+10\s+5\s+10$`).MatchString(r.stdout) {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 10, 1: 10, 2: 10}) {
		t.Fatalf("a dry run changed the offsets: %v", got)
	}
	r = s.run(t, "groups", "reset", group, "--topic", s.topic, "--to-datetime", at)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "reset group reset.test: 3 partitions of groups.scripted.v1") {
		t.Fatalf("reset --to-datetime: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 5, 1: 5, 2: 5}) {
		t.Fatalf("after --to-datetime %s: committed %v, want 5 on each partition", at, got)
	}
	// A time exactly on a record's timestamp lands on that record; one after
	// the last record, on the end.
	if r := s.run(t, "groups", "reset", group, "--topic", s.topic, "--to-datetime", s.at(2).Format(time.RFC3339)); r.code != cli.ExitOK {
		t.Fatalf("reset to record 2's time: exit %d\n%s", r.code, r.stderr)
	}
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 2, 1: 2, 2: 2}) {
		t.Fatalf("after --to-datetime at record 2: committed %v", got)
	}

	// --to-offset moves the partitions given and only those.
	r = s.run(t, "groups", "reset", group, "--topic", s.topic, "--to-offset", "0:7,2:0")
	if r.code != cli.ExitOK || regexp.MustCompile(`(?m)^reset\.test\s+groups\.scripted\.v1\s+1\s`).MatchString(r.stdout) {
		t.Fatalf("reset --to-offset: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 7, 1: 2, 2: 0}) {
		t.Fatalf("after --to-offset 0:7,2:0: committed %v", got)
	}
	for _, tt := range []struct{ offsets, want string }{
		{"1:11", "groups.scripted.v1/1 offset 11 is outside 0..10"},
		{"3:0", "topic groups.scripted.v1 has no partition 3 (it has 3)"},
	} {
		r := s.run(t, "groups", "reset", group, "--topic", s.topic, "--to-offset", tt.offsets)
		if r.code != cli.ExitUsage || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("--to-offset %s: exit %d, stderr %q; want exit 2 and %q", tt.offsets, r.code, r.stderr, tt.want)
		}
	}
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 7, 1: 2, 2: 0}) {
		t.Fatalf("a refused reset changed the offsets: %v", got)
	}
	// A group that does not exist yet is created at the plan's offsets.
	if r := s.run(t, "groups", "reset", "fresh.test", "--topic", s.topic, "--to-offset", "1:3"); r.code != cli.ExitOK ||
		!regexp.MustCompile(`(?m)^fresh\.test\s+groups\.scripted\.v1\s+1\s+-\s+3\s+10$`).MatchString(r.stdout) {
		t.Fatalf("reset of a new group: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if got := s.committed(t, "fresh.test"); !maps.Equal(got, map[int32]int64{1: 3}) {
		t.Fatalf("new group after --to-offset 1:3: committed %v", got)
	}
	if r := s.run(t, "groups", "reset", group, "--topic", "no.such.topic", "--to-latest"); r.code != cli.ExitError || !strings.Contains(r.stderr, "topic no.such.topic") {
		t.Errorf("reset of a missing topic: exit %d\n%s", r.code, r.stderr)
	}

	if r := s.run(t, "groups", "reset", group, "--topic", s.topic, "--to-latest"); r.code != cli.ExitOK {
		t.Fatalf("reset --to-latest: exit %d\n%s", r.code, r.stderr)
	}
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 10, 1: 10, 2: 10}) {
		t.Fatalf("after --to-latest: committed %v", got)
	}
	if r := s.run(t, "groups", "reset", group, "--topic", s.topic, "--to-earliest"); r.code != cli.ExitOK {
		t.Fatalf("reset --to-earliest: exit %d\n%s", r.code, r.stderr)
	}
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 0, 1: 0, 2: 0}) {
		t.Fatalf("after --to-earliest: committed %v", got)
	}

	// Running again, the group is refused, dry run or not, and its
	// offsets stay what its member committed.
	s.consume(t, group, 10)
	for _, extra := range [][]string{{"--dry-run"}, nil} {
		args := append([]string{"groups", "reset", group, "--topic", s.topic, "--to-earliest"}, extra...)
		r := s.run(t, args...)
		if r.code != cli.ExitError || !strings.Contains(r.stderr, "group reset.test has 1 active member(s) (state Stable); stop its consumers first") {
			t.Errorf("reset of a running group %v: exit %d\n%s%s", extra, r.code, r.stdout, r.stderr)
		}
	}
	if got := s.committed(t, group); !maps.Equal(got, map[int32]int64{0: 10, 1: 10, 2: 10}) {
		t.Fatalf("a refused reset changed a running group's offsets: %v", got)
	}
}
