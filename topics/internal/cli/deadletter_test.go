package cli_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.uber.org/zap"

	"backinstock/shared/kafka"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
	"backinstock/topics/internal/cli"
)

func TestDeadLetterUsage(t *testing.T) {
	isolate(t)
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"deadletter"}, cli.ExitUsage, "Usage: topics deadletter <command>"},
		{[]string{"deadletter", "--help"}, cli.ExitOK, "redrive"},
		{[]string{"deadletter", "frob"}, cli.ExitUsage, `unknown command "frob"`},
		{[]string{"deadletter", "list", "--help"}, cli.ExitOK, "Usage: topics deadletter list"},
		{[]string{"deadletter", "redrive", "-h"}, cli.ExitOK, "-max-redrives"},
		{[]string{"deadletter", "show"}, cli.ExitUsage, "want 1 argument(s), got 0"},
		{[]string{"deadletter", "show", "x", "--brokers", "127.0.0.1:1"}, cli.ExitUsage, `"x" is not <partition>:<offset>`},
		{[]string{"deadletter", "list", "extra"}, cli.ExitUsage, "unexpected arguments: extra"},
		{[]string{"deadletter", "list", "--since", "yesterday"}, cli.ExitUsage, `--since: "yesterday" is neither an RFC 3339 time`},
		{[]string{"deadletter", "list", "--since", "1h", "--until", "2h"}, cli.ExitUsage, "is not after --since"},
		{[]string{"deadletter", "list", "--limit", "-1"}, cli.ExitUsage, "--limit: must not be negative"},
		{[]string{"deadletter", "list", "--dead-letter-topic", ""}, cli.ExitUsage, "--dead-letter-topic: must not be empty"},
		{[]string{"deadletter", "redrive"}, cli.ExitUsage, "name the dead letters: --select"},
		{[]string{"deadletter", "redrive", "--select", "1:2", "--reason", "x"}, cli.ExitUsage, "--select names the records itself"},
		{[]string{"deadletter", "redrive", "--select", "1"}, cli.ExitUsage, `--select: "1" is not <partition>:<offset>`},
		{[]string{"deadletter", "redrive", "--all", "--max-redrives", "0"}, cli.ExitUsage, "--max-redrives: must be at least 1, got 0"},
		{[]string{"deadletter", "list", "--brokers", "127.0.0.1:1"}, cli.ExitError, "connect to kafka 127.0.0.1:1"},
	}
	for _, tt := range tests {
		r := run(t, tt.args...)
		if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.want) {
			t.Errorf("topics %v: exit %d, output %q; want exit %d and %q", tt.args, r.code, r.stdout+r.stderr, tt.code, tt.want)
		}
	}
}

// TestDeadLetterRedrive is the case: poison records reach
// deadletter.v1 through the shared group runner, the handler is fixed, and
// they are redriven twice: each is processed once, and the source topic
// holds one redriven copy of each. On the way: list's filters, show, the
// dry run, and the redrive limit.
func TestDeadLetterRedrive(t *testing.T) {
	isolate(t)
	brokers := cluster(t, 1)
	cfg := kafka.Config{Brokers: strings.Split(brokers, ",")}
	const source = "dltest.source.v1"
	adm, err := kafka.NewClusterAdmin(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{source, catalog.DeadLetter} {
		if err := adm.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}
	_ = adm.Close()

	// 20 records: k00-k09 poison until fixed, k10-k18 good, k19 poison for good.
	kind := func(i int) string {
		switch {
		case i < 10:
			return "poison"
		case i < 19:
			return "good"
		}
		return "hopeless"
	}
	prod, err := kafka.NewProducer(cfg, kafka.ProducerOptions{}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	var msgs []*sarama.ProducerMessage
	for i := range 20 {
		msgs = append(msgs, &sarama.ProducerMessage{
			Topic: source, Key: sarama.StringEncoder(fmt.Sprintf("k%02d", i)),
			Value:   sarama.StringEncoder(fmt.Sprintf(`{"n":%d,"kind":%q}`, i, kind(i))),
			Headers: kafka.RecordHeaders(events.Headers(events.SchemaNotification, "")),
		})
	}
	if err := prod.SendAll(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	_ = prod.Close()

	var (
		fixed     atomic.Bool
		mu        sync.Mutex
		processed = map[string]int{}
		next      = map[int32]int64{} // the offset after the last handled, per partition
	)
	handler := kafka.HandlerFunc(func(_ context.Context, b *kafka.Batch) error {
		for _, m := range b.Records {
			var v struct{ Kind string }
			if err := json.Unmarshal(m.Value, &v); err != nil {
				return err
			}
			switch {
			case v.Kind == "hopeless":
				b.Reject(m, errors.New("hopeless: kind is never accepted"))
			case v.Kind == "poison" && !fixed.Load():
				b.Reject(m, errors.New("poison: field n is refused until the fix"))
			default:
				mu.Lock()
				processed[string(m.Key)]++
				mu.Unlock()
			}
		}
		mu.Lock()
		next[b.Partition] = b.Last().Offset + 1
		mu.Unlock()
		return nil
	})
	g, err := kafka.NewGroup(cfg, kafka.GroupOptions{Group: "dltest", Topics: []string{source}}, handler, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	gctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(gctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("group: %v", err)
		}
	}()

	cl, err := kafka.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends := func(topic string) (total int64, per map[int32]int64) {
		t.Helper()
		per = map[int32]int64{}
		for p := range int32(3) {
			o, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				t.Fatal(err)
			}
			per[p], total = o, total+o
		}
		return total, per
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("within 20s: %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	caughtUp := func() bool {
		_, per := ends(source)
		mu.Lock()
		defer mu.Unlock()
		for p, end := range per {
			if next[p] != end {
				return false
			}
		}
		return true
	}
	waitFor("11 dead letters and the source consumed", func() bool {
		n, _ := ends(catalog.DeadLetter)
		return n == 11 && caughtUp()
	})

	// list and its filters
	dl := func(args ...string) result {
		return run(t, append(append([]string{"deadletter"}, args...), "--brokers", brokers)...)
	}
	lines := func(r result) []string {
		t.Helper()
		if r.code != cli.ExitOK {
			t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
		ls := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		return ls[1:] // the header
	}
	all := lines(dl("list"))
	if len(all) != 11 || !strings.Contains(all[0], source) || !strings.Contains(r0(all, "k03"), "poison: field n is refused until the fix") {
		t.Fatalf("list: %d lines\n%s", len(all), strings.Join(all, "\n"))
	}
	future, past := time.Now().Add(time.Hour).Format(time.RFC3339), "2000-01-01T00:00:00Z"
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"--reason", "HOPELESS"}, 1},
		{[]string{"--reason", "poison", "--source-topic", source}, 10},
		{[]string{"--source-topic", "other.v1"}, 0},
		{[]string{"--since", "1h"}, 11},
		{[]string{"--since", future}, 0},
		{[]string{"--until", past}, 0},
		{[]string{"--since", past, "--until", future, "--limit", "3"}, 3},
	} {
		if got := lines(dl(append([]string{"list"}, tt.args...)...)); len(got) != tt.want {
			t.Errorf("list %v: %d records, want %d:\n%s", tt.args, len(got), tt.want, strings.Join(got, "\n"))
		}
	}
	type listed struct {
		Partition       int32
		Offset          int64
		SourceTopic     string `json:"source_topic"`
		SourcePartition int32  `json:"source_partition"`
		SourceOffset    int64  `json:"source_offset"`
		Group, Reason   string
		Redrives        int
		Key             *string
	}
	listJSON := func(args ...string) []listed {
		t.Helper()
		r := dl(append([]string{"list", "--json"}, args...)...)
		if r.code != cli.ExitOK {
			t.Fatalf("list --json: exit %d\n%s", r.code, r.stderr)
		}
		var out []listed
		for l := range strings.Lines(r.stdout) {
			var d listed
			if err := json.Unmarshal([]byte(l), &d); err != nil {
				t.Fatalf("list --json line %q: %v", l, err)
			}
			out = append(out, d)
		}
		return out
	}
	js := listJSON("--reason", "poison")
	if len(js) != 10 || js[0].SourceTopic != source || js[0].Group != "dltest" || js[0].Key == nil || js[0].Redrives != 0 {
		t.Fatalf("list --json: %+v", js)
	}

	// show
	at := fmt.Sprintf("%d:%d", js[0].Partition, js[0].Offset)
	r := dl("show", at)
	for _, w := range []string{"source:    " + source + fmt.Sprintf(" %d:%d", js[0].SourcePartition, js[0].SourceOffset), "reason:    poison: field n",
		"dlq-reason: poison", "content-type: application/json", "schema: Notification/1", "value (JSON", "\n  \"kind\": \"poison\""} {
		if r.code != cli.ExitOK || !strings.Contains(r.stdout, w) {
			t.Errorf("show %s: exit %d, lacks %q:\n%s%s", at, r.code, w, r.stdout, r.stderr)
		}
	}
	if r := dl("show", "0:999"); r.code != cli.ExitError || !strings.Contains(r.stderr, "no such record") {
		t.Errorf("show 0:999: exit %d, %q", r.code, r.stderr)
	}

	// the dry run writes nothing
	srcBefore, _ := ends(source)
	r = dl("redrive", "--reason", "poison", "--dry-run")
	if r.code != cli.ExitOK || strings.Count(r.stdout, "would redrive  ") != 10 || !strings.Contains(r.stdout, "nothing written: would redrive 10,") {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n, _ := ends(source); n != srcBefore {
		t.Fatalf("the dry run wrote %d records", n-srcBefore)
	}

	// fixed, redriven twice
	fixed.Store(true)
	r = dl("redrive", "--reason", "poison")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "redriven 10, already redriven 0, duplicates 0, refused 0") {
		t.Fatalf("first redrive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = dl("redrive", "--reason", "poison")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "redriven 0, already redriven 10, duplicates 0, refused 0") {
		t.Fatalf("second redrive: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// by position too, the same dead letter named twice
	r = dl("redrive", "--select", at+","+at)
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "redriven 0, already redriven 1,") {
		t.Fatalf("redrive --select: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitFor("the redriven records consumed", caughtUp)
	mu.Lock()
	for i := range 20 {
		k, want := fmt.Sprintf("k%02d", i), 1
		if kind(i) == "hopeless" {
			want = 0
		}
		if processed[k] != want {
			t.Errorf("%s processed %d times, want %d", k, processed[k], want)
		}
	}
	mu.Unlock()
	copies := map[string]int{}
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	_, per := ends(source)
	for p, end := range per {
		pc, err := cons.ConsumePartition(source, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for off := int64(0); off < end; off++ {
			m := <-pc.Messages()
			h := kafka.ConsumerHeaders(m)
			if of, ok := h.Lookup(events.HeaderRedriveOf); ok {
				copies[fmt.Sprintf("%d/%s", p, of)]++
				if h.Get(events.HeaderRedrives) != "1" || h.Get(events.HeaderContentType) != events.ContentTypeJSON || h.Get(events.HeaderDLQReason) != "" ||
					!strings.Contains(string(m.Value), `"kind":"poison"`) {
					t.Errorf("redriven copy at %d:%d: headers %v, value %s", p, m.Offset, h.Keys(), m.Value)
				}
			}
		}
		_ = pc.Close()
	}
	if len(copies) != 10 {
		t.Errorf("source topic holds copies of %d records, want 10: %v", len(copies), copies)
	}
	for k, n := range copies {
		if n != 1 {
			t.Errorf("source record %s has %d copies", k, n)
		}
	}

	// the limit: the hopeless record is redriven once, dead-lettered again,
	// and then refused at --max-redrives 1
	hopeless := listJSON("--reason", "hopeless")
	r = dl("redrive", "--select", fmt.Sprintf("%d:%d", hopeless[0].Partition, hopeless[0].Offset), "--max-redrives", "1")
	if r.code != cli.ExitOK || !strings.Contains(r.stdout, "redriven 1,") {
		t.Fatalf("redrive of the hopeless record: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	waitFor("the hopeless record dead-lettered again", func() bool {
		n, _ := ends(catalog.DeadLetter)
		return n == 12 && caughtUp()
	})
	if again := listJSON("--reason", "hopeless"); len(again) != 2 || again[1].Redrives != 1 {
		t.Fatalf("hopeless dead letters: %+v", again)
	}
	srcBefore, _ = ends(source)
	r = dl("redrive", "--reason", "hopeless", "--max-redrives", "1")
	if r.code != cli.ExitError || !strings.Contains(r.stderr, "refused ") || !strings.Contains(r.stderr, "redriven 1 time(s) already (--max-redrives 1)") ||
		!strings.Contains(r.stderr, "1 of 2 dead letters refused") || !strings.Contains(r.stdout, "redriven 0, already redriven 1, duplicates 0, refused 1") {
		t.Fatalf("redrive beyond the limit: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if n, _ := ends(source); n != srcBefore {
		t.Fatalf("a refused redrive wrote %d records", n-srcBefore)
	}
}

// r0 is the first line containing s.
func r0(lines []string, s string) string {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
