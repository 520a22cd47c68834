package catalog_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"backinstock/topics/catalog"
)

// newCluster starts a kfake cluster of n brokers and a sarama admin on it;
// both are closed when the test ends.
func newCluster(t *testing.T, n int) (*kfake.Cluster, sarama.ClusterAdmin) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(n))
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}
	t.Cleanup(c.Close)
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.ClientID = "catalog-test"
	cfg.Admin.Timeout = 10 * time.Second
	admin, err := sarama.NewClusterAdmin(c.ListenAddrs(), cfg)
	if err != nil {
		t.Fatalf("admin: %v", err)
	}
	t.Cleanup(func() { _ = admin.Close() })
	return c, admin
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustPlan(t *testing.T, ctx context.Context, admin sarama.ClusterAdmin, cat *catalog.Catalog, allowDelete bool) catalog.Changes {
	t.Helper()
	ch, err := catalog.Plan(ctx, admin, cat, allowDelete)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return ch
}

func mustApply(t *testing.T, ctx context.Context, admin sarama.ClusterAdmin, ch catalog.Changes) {
	t.Helper()
	if err := catalog.Apply(ctx, admin, ch); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

func TestPlanApplyIsIdempotent(t *testing.T) {
	_, admin := newCluster(t, 3)
	ctx := testContext(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}

	first := mustPlan(t, ctx, admin, cat, false)
	created := map[string]bool{}
	for _, a := range first.Actions {
		if a.Kind != catalog.CreateTopic {
			t.Errorf("plan on an empty cluster: unexpected action %s", a)
		}
		created[a.Topic] = true
	}
	for _, name := range cat.Names() {
		if !created[name] {
			t.Errorf("plan on an empty cluster does not create %s", name)
		}
	}
	mustApply(t, ctx, admin, first)

	second := mustPlan(t, ctx, admin, cat, false)
	if !second.Empty() || len(second.Notes) > 0 {
		t.Fatalf("plan after apply is not empty:\n%s", second)
	}
	mustApply(t, ctx, admin, second) // a no-op
	if third := mustPlan(t, ctx, admin, cat, true); !third.Empty() {
		t.Fatalf("plan after a second apply is not empty:\n%s", third)
	}
	t.Logf("first plan:\n%s", first)
}

func alterConfig(t *testing.T, admin sarama.ClusterAdmin, topic, key, value string) {
	t.Helper()
	err := admin.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		key: {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &value},
	}, false)
	if err != nil {
		t.Fatalf("alter %s %s out of band: %v", topic, key, err)
	}
}

func actionLines(ch catalog.Changes) []string {
	var out []string
	for _, a := range ch.Actions {
		out = append(out, a.String())
	}
	return out
}

func TestPlanShowsExactlyTheDrift(t *testing.T) {
	_, admin := newCluster(t, 3)
	ctx := testContext(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, ctx, admin, mustPlan(t, ctx, admin, cat, false))

	sms := catalog.Notify("eu-west-1", "sms")
	alterConfig(t, admin, sms, catalog.ConfigRetentionMS, "1000")                    // a managed config changed by hand
	alterConfig(t, admin, catalog.Restock, catalog.ConfigSegmentBytes, "1073741824") // an override the catalogue does not set
	grown := cat.ForBrokers(3)
	for i := range grown.Topics {
		if grown.Topics[i].Name == catalog.WishlistChanges {
			grown.Topics[i].Partitions = 24
		}
	}

	got := mustPlan(t, ctx, admin, grown, false)
	want := []string{
		"~ reset " + catalog.Restock + ": segment.bytes 1073741824 -> cluster default (not in the catalogue)",
		"~ grow " + catalog.WishlistChanges + ": partitions 12 -> 24",
		"~ config " + sms + ": retention.ms 1000 -> 604800000",
	}
	if !slices.Equal(actionLines(got), want) {
		t.Fatalf("plan after drift:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	mustApply(t, ctx, admin, got)
	if again := mustPlan(t, ctx, admin, grown, false); !again.Empty() {
		t.Fatalf("plan after fixing the drift is not empty:\n%s", again)
	}

	md, err := admin.DescribeTopics([]string{catalog.WishlistChanges})
	if err != nil || len(md) != 1 || len(md[0].Partitions) != 24 {
		t.Fatalf("%s after grow: %v partitions, err %v", catalog.WishlistChanges, md, err)
	}

	// Shrinking is refused, naming the topic; the plan is not applied.
	_, err = catalog.Plan(ctx, admin, cat, false) // the catalogue says 12 again
	if err == nil || !strings.Contains(err.Error(), catalog.WishlistChanges) || !strings.Contains(err.Error(), "cannot remove partitions") {
		t.Fatalf("plan that would shrink %s: err = %v, want one naming the topic", catalog.WishlistChanges, err)
	}
}

func TestDeleteNeedsAllowDeleteAndOurNames(t *testing.T) {
	_, admin := newCluster(t, 3)
	ctx := testContext(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, ctx, admin, mustPlan(t, ctx, admin, cat, false))
	for _, name := range []string{"inventory.obsolete.v1", "billing.invoices.v1", "Legacy_Topic", "__consumer_offsets_like"} {
		if err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}

	if ch := mustPlan(t, ctx, admin, cat, false); !ch.Empty() {
		t.Fatalf("plan without --allow-delete lists changes:\n%s", ch)
	}
	ch := mustPlan(t, ctx, admin, cat, true)
	if want := []string{"- delete inventory.obsolete.v1"}; !slices.Equal(actionLines(ch), want) {
		t.Fatalf("plan with allowDelete:\n%s\nwant only %v (other domains and names off the rule are not ours)", ch, want)
	}
	mustApply(t, ctx, admin, ch)
	existing, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := existing["inventory.obsolete.v1"]; ok {
		t.Fatal("inventory.obsolete.v1 still exists after apply")
	}
	for _, keep := range []string{"billing.invoices.v1", "Legacy_Topic", catalog.Restock} {
		if _, ok := existing[keep]; !ok {
			t.Errorf("%s was deleted", keep)
		}
	}
	if again := mustPlan(t, ctx, admin, cat, true); !again.Empty() {
		t.Fatalf("plan after delete is not empty:\n%s", again)
	}
}

func TestSingleBrokerCluster(t *testing.T) {
	_, admin := newCluster(t, 1)
	ctx := testContext(t)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}

	// Unfitted, replication 3 cannot be met; the error names the topic.
	err = catalog.Apply(ctx, admin, mustPlan(t, ctx, admin, cat, false))
	if err == nil || !strings.Contains(err.Error(), "create topic "+catalog.Restock+":") {
		t.Fatalf("apply replication 3 on one broker: err = %v, want one naming %s", err, catalog.Restock)
	}

	fitted := cat.ForBrokers(1)
	if err := fitted.Validate(); err != nil {
		t.Fatalf("fitted catalogue is invalid: %v", err)
	}
	ch, err := catalog.Sync(ctx, admin, fitted, false)
	if err != nil {
		t.Fatalf("sync fitted catalogue: %v\n%s", err, ch)
	}
	if again := mustPlan(t, ctx, admin, fitted, false); !again.Empty() || len(again.Notes) > 0 {
		t.Fatalf("plan after sync is not empty:\n%s", again)
	}
	topics, err := catalog.ListCluster(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	for _, tp := range topics {
		if tp.ReplicationFactor != 1 || (tp.Configs[catalog.ConfigMinInsyncReplicas] != "" && tp.Configs[catalog.ConfigMinInsyncReplicas] != "1") {
			t.Errorf("%s: replication %d, min.insync.replicas %q; want 1 and 1", tp.Name, tp.ReplicationFactor, tp.Configs[catalog.ConfigMinInsyncReplicas])
		}
	}

	// The full catalogue against this cluster: replication drift is a
	// note, not an action, since apply cannot fix it.
	full := mustPlan(t, ctx, admin, cat, false)
	if len(full.Notes) != len(cat.Topics) || !strings.Contains(full.Notes[0], "replication factor is 1 on the cluster, 3 in the catalogue") {
		t.Fatalf("plan of the unfitted catalogue: notes %q", full.Notes)
	}
	for _, a := range full.Actions {
		if a.Kind != catalog.SetConfig || a.Config != catalog.ConfigMinInsyncReplicas {
			t.Errorf("unexpected action %s", a)
		}
	}
}

func TestPlanHonoursContext(t *testing.T) {
	_, admin := newCluster(t, 1)
	cat, err := catalog.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := catalog.Plan(ctx, admin, cat, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("plan with a cancelled context: %v", err)
	}
}
