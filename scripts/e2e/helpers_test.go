//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"backinstock/scripts/internal/e2eenv"
	"backinstock/topics/events"
)

var channels = events.ChannelNames()

var seq atomic.Int64

// unique returns an id no other scenario of this run uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1_000_000, seq.Add(1))
}

// subset returns the channels of a non-zero 4-bit mask.
func subset(mask int) []string {
	var out []string
	for i, c := range channels {
		if mask&(1<<i) != 0 {
			out = append(out, c)
		}
	}
	return out
}

// expectation is the notifications a scenario must find at the edge.
type expectation struct {
	ids      map[string]bool
	byRegion map[string]int
	skus     map[string]bool
}

func newExpectation() *expectation {
	return &expectation{ids: map[string]bool{}, byRegion: map[string]int{}, skus: map[string]bool{}}
}

func (e *expectation) add(user, sku, region string, episode int64, chans ...string) {
	e.skus[sku] = true
	for _, c := range chans {
		id := events.NotificationID(user, sku, region, episode, c)
		if !e.ids[id] {
			e.ids[id] = true
			e.byRegion[region]++
		}
	}
}

// baselines are the edge streams' last sequences before a scenario acts.
func baselines(t *testing.T, ctx context.Context) map[string]e2eenv.Mark {
	t.Helper()
	out := map[string]e2eenv.Mark{}
	for _, r := range stack.Regions {
		_, last, err := edge.State(ctx, r)
		if err != nil {
			t.Fatalf("edge state: %v", err)
		}
		out[r] = last
	}
	return out
}

// verify waits until every region's stream holds at least the expected
// count after its baseline and then stops growing, reads what arrived for
// the scenario's skus, prints the counts and fails unless every expected
// notification is there exactly once and nothing else is. It returns what
// arrived.
func verify(t *testing.T, ctx context.Context, name string, base map[string]e2eenv.Mark, exp *expectation, timeout time.Duration) []e2eenv.Delivered {
	t.Helper()
	var waitErrs []string
	for r, n := range exp.byRegion {
		if _, err := edge.WaitCount(ctx, r, base[r], uint64(n), timeout); err != nil {
			waitErrs = append(waitErrs, err.Error())
		}
	}
	for _, r := range stack.Regions {
		if err := edge.WaitQuiet(ctx, r, 2*time.Second, timeout); err != nil {
			waitErrs = append(waitErrs, err.Error())
		}
	}
	var got []e2eenv.Delivered
	for _, r := range stack.Regions {
		d, err := edge.Collect(ctx, r, base[r], func(d *e2eenv.Delivered) bool { return exp.skus[d.SKU] })
		if err != nil {
			t.Fatalf("collect %s: %v", r, err)
		}
		got = append(got, d...)
	}
	c := e2eenv.Tally(name, exp.ids, got)
	report(t, c)
	if !c.OK() {
		t.Errorf("%s: not exactly once: %s\nwaits: %s\n%s", name, c, strings.Join(waitErrs, "; "), stack.Logs(30))
	}
	return got
}

// report prints the counts line so `make e2e` shows it without -v too.
func report(t *testing.T, c e2eenv.Counts) {
	t.Helper()
	line := fmt.Sprintf("COUNTS %s", c)
	t.Log(line)
	fmt.Println(line)
}

func mustStock(t *testing.T, ctx context.Context, sku string, u e2eenv.StockUpdate, wantRestock bool) e2eenv.StockResult {
	t.Helper()
	res, err := stack.Client().SetStock(ctx, sku, u)
	if err != nil {
		t.Fatalf("set stock %s %s=%d: %v", sku, u.Region, u.Quantity, err)
	}
	if res.Restock != wantRestock {
		t.Fatalf("set stock %s %s=%d: restock=%v, want %v (%+v)", sku, u.Region, u.Quantity, res.Restock, wantRestock, res)
	}
	return res
}

func mustImport(t *testing.T, ctx context.Context, lines []e2eenv.ImportLine) {
	t.Helper()
	res, err := stack.Client().Import(ctx, lines)
	if err != nil {
		t.Fatalf("import %d lines: %v", len(lines), err)
	}
	if res.Imported != int64(len(lines)) {
		t.Fatalf("import: %d of %d lines imported", res.Imported, len(lines))
	}
}
