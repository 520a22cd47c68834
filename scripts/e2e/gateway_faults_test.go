//go:build e2e

package e2e

// The gateway's fault runs (issue 14, "Done when"): real `gateway`
// processes (built with -tags crashhook, NewCrashGateway) reading a region's edge stream on
// the stack's nats-server with the gateway's own NATS user, claiming in the
// stack's redis-server, writing receipts to delivery.status.v1 on the kfake
// cluster, and sending to a real Mailpit.
//
//   - TestGatewaySIGKILLAtEachStep: 20,000 emails, two gateways; one is
//     SIGKILLed at each protocol step in turn (after-claim, after-send,
//     after-mark, after-receipt) and restarted each time.
//   - TestGatewaySMTPDown30s: a few thousand emails; the SMTP server is
//     stopped for 30 s in the middle and started again on the same port
//     and database.
//
// Each scenario has its own region (its own edge stream and durable
// consumer), so the edge traffic of the other scenarios is not delivered.

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/scripts/internal/e2eenv"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	edgenames "backinstock/topics/edge"
	"backinstock/topics/events"
)

// The gateways' settings in both scenarios: a short ack wait so a killed
// gateway's messages come back within seconds (SMTP_TIMEOUT stays below
// it), the back-off capped so a retry during the outage sleeps at most
// gwRetryDelay + gwMaxBackoff − gwAckWait.
const (
	gwWorkers    = 8
	gwAckWait    = 5 * time.Second
	gwMaxBackoff = 10 * time.Second
	gwRetryDelay = time.Second
)

func gatewayEnv(extra ...string) []string {
	return append([]string{
		"GATEWAY_WORKERS=" + strconv.Itoa(gwWorkers),
		"GATEWAY_ACK_WAIT=" + gwAckWait.String(), "SMTP_TIMEOUT=3s",
		"GATEWAY_MAX_BACKOFF=" + gwMaxBackoff.String(), "GATEWAY_RETRY_DELAY=" + gwRetryDelay.String(),
	}, extra...)
}

// ownRegion creates a region of its own: its edge streams as the notifier
// creates them (testenv.CreateEdgeStreams).
func ownRegion(t *testing.T, ctx context.Context, prefix string) string {
	t.Helper()
	region := fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1_000_000)
	if err := testenv.CreateEdgeStreams(ctx, edge.JS, region); err != nil {
		t.Fatalf("edge streams of %s: %v", region, err)
	}
	return region
}

// emailNotification is user's email notification about sku in region.
func emailNotification(region, user, sku string) events.Notification {
	return events.Notification{
		NotificationID: events.NotificationID(user, sku, region, 1, events.ChannelEmail),
		RestockEventID: events.RestockEventID(sku, region, 1),
		UserID:         user, SKU: sku, Region: region, Channel: events.ChannelEmail, Episode: 1,
		Title: "Kettle " + sku, Body: "Kettle " + sku + " is back in stock.", URL: "https://shop.example/p/" + sku,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), Locale: "en-US", Contact: user + "@example.com",
	}
}

// publishEmails puts users [from, to) of sku on region's edge as the
// notifier does (Nats-Msg-Id = notification id), in batches of async
// publishes, and returns their notification ids.
func publishEmails(t *testing.T, ctx context.Context, region, sku string, from, to int) []string {
	t.Helper()
	var ids []string
	const batch = 1000
	for lo := from; lo < to; lo += batch {
		var futs []jetstream.PubAckFuture
		for i := lo; i < min(lo+batch, to); i++ {
			n := emailNotification(region, fmt.Sprintf("u%06d", i), sku)
			data, err := events.Encode(n)
			if err != nil {
				t.Fatal(err)
			}
			m := nats.NewMsg(edgenames.Subject(region, n.Channel, n.UserID))
			m.Data = data
			m.Header.Set("traceparent", events.NewTraceparent())
			f, err := edge.JS.PublishMsgAsync(m, jetstream.WithMsgID(n.NotificationID))
			if err != nil {
				t.Fatalf("publish %s: %v", n.NotificationID, err)
			}
			futs = append(futs, f)
			ids = append(ids, n.NotificationID)
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				t.Fatalf("publish: %v", err)
			case <-ctx.Done():
				t.Fatal(ctx.Err())
			}
		}
	}
	return ids
}

func startMailpit(t *testing.T, name string) *testenv.Mailpit {
	t.Helper()
	// testenv starts it with --max 0: Mailpit's default keeps only the
	// newest 500 messages, and these runs count every one.
	mp, err := testenv.StartMailpit(testenv.MailpitOptions{Dir: filepath.Join(stack.Dir, name)})
	if err != nil {
		t.Fatalf("start mailpit: %v", err)
	}
	t.Cleanup(mp.Close)
	return mp
}

func startGateway(t *testing.T, ctx context.Context, name, region, smtpAddr string, env ...string) *e2eenv.Proc {
	t.Helper()
	host, port, err := net.SplitHostPort(smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	env = append([]string{"SMTP_HOST=" + host, "SMTP_PORT=" + port, "SMTP_TLS=none", "EMAIL_FROM=Shop <shop@shop.example>"}, gatewayEnv(env...)...)
	p, err := stack.NewCrashGateway(ctx, name, region, env...)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(40 * time.Second) })
	return p
}

// copies counts the emails Mailpit holds per Message-ID, with when each
// copy arrived.
func copies(t *testing.T, ctx context.Context, mp *testenv.Mailpit) map[string][]time.Time {
	t.Helper()
	msgs, err := mp.Messages(ctx)
	if err != nil {
		t.Fatalf("mailpit messages: %v", err)
	}
	out := map[string][]time.Time{}
	for _, m := range msgs {
		out[m.MessageID] = append(out[m.MessageID], m.Created)
	}
	for _, ts := range out {
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	}
	return out
}

// waitAllDelivered waits until Mailpit holds an email for every id and
// returns the copies per Message-ID and when the last missing one came.
func waitAllDelivered(t *testing.T, ctx context.Context, mp *testenv.Mailpit, ids []string, timeout time.Duration) map[string][]time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		n, err := mp.Count(ctx)
		if err == nil && n >= len(ids) {
			got := copies(t, ctx, mp)
			missing := 0
			for _, id := range ids {
				if len(got[messageID(id)]) == 0 {
					missing++
				}
			}
			if missing == 0 {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("after %s, %d of %d emails are missing from Mailpit (it holds %d)\n%s", timeout, missing, len(ids), n, stack.Logs(20))
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("after %s Mailpit holds %d emails (%v), want at least %d\n%s", timeout, n, err, len(ids), stack.Logs(20))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func messageID(notificationID string) string { return notificationID + "@shop.example" }

// sentEvents reads delivery.status.v1 and returns, for each of ids, the
// distinct event ids of its `sent` receipts, and every other status seen.
func sentEvents(t *testing.T, ids []string) (sent map[string]map[string]bool, other []events.DeliveryStatus, records int) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	cl, err := kafka.NewClient(kafka.Config{Brokers: stack.Kafka.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sent = map[string]map[string]bool{}
	testenv.ReadTopic(t, cl, catalog.DeliveryStatus, func(m *sarama.ConsumerMessage) {
		d, err := events.DecodeDeliveryStatus(m.Value)
		if err != nil {
			t.Fatalf("receipt at %d/%d: %v", m.Partition, m.Offset, err)
		}
		if !want[d.NotificationID] {
			return // another scenario's
		}
		records++
		if d.Status != events.StatusSent {
			other = append(other, d)
			return
		}
		if sent[d.NotificationID] == nil {
			sent[d.NotificationID] = map[string]bool{}
		}
		sent[d.NotificationID][d.EventID] = true
	})
	return sent, other, records
}

// checkReceipts waits until every id has a `sent` receipt and fails unless
// each has exactly one distinct sent event and no other outcome.
func checkReceipts(t *testing.T, ids []string, timeout time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		sent, other, records := sentEvents(t, ids)
		missing, multi := 0, 0
		for _, id := range ids {
			switch len(sent[id]) {
			case 0:
				missing++
			case 1:
			default:
				multi++
			}
		}
		if len(other) > 0 || multi > 0 {
			t.Fatalf("receipts: %d notifications with more than one sent event id; other outcomes: %+v", multi, other[:min(len(other), 5)])
		}
		if missing == 0 {
			return records
		}
		if time.Now().After(deadline) {
			t.Fatalf("receipts: %d of %d notifications have no sent receipt after %s", missing, len(ids), timeout)
		}
		time.Sleep(time.Second)
	}
}

// waitSending waits until p has sent at least one email since it started
// and returns how long that took from since.
func waitSending(t *testing.T, ctx context.Context, p *e2eenv.Proc, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	if err := p.WaitReady(ctx, timeout); err != nil {
		t.Fatal(err)
	}
	deadline := since.Add(timeout)
	for {
		if v, err := p.Metric(ctx, "backinstock_gateway_sent_total"); err == nil && v > 0 {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sent nothing within %s of its start\n%s", p.Name, timeout, p.Tail(30))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGatewaySIGKILLAtEachStep: 20,000 email notifications on a region's
// edge, two gateways sharing its durable consumer. Gateway 0 is started
// with GATEWAY_CRASH_AT set to each protocol step in turn and SIGKILLs
// itself there on its gwCrashAfter-th pass (in the middle of its work,
// with its other workers busy), and is restarted each time; gateway 1 runs
// throughout. Then: Mailpit holds an email for every notification; every
// duplicate (a Message-ID twice) is attributed to the kill just after its
// first copy (or up to half a second before it: Mailpit may store a killed
// gateway's last send after the exit) and no kill has more than
// GATEWAY_WORKERS of them (the
// documented bound: one per send of the killed process between the SMTP
// server's 250 and the marker), the after-send kill at least one (the
// crashing send itself); delivery.status.v1 holds exactly one distinct
// sent event per notification; each restarted gateway sends again within
// gwResumeBound.
func TestGatewaySIGKILLAtEachStep(t *testing.T) {
	const (
		n             = 20000
		gwCrashAfter  = 300
		gwResumeBound = 15 * time.Second
	)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	t0 := time.Now()
	region := ownRegion(t, ctx, "gwkill")
	mp := startMailpit(t, "mailpit-"+region)
	ids := publishEmails(t, ctx, region, "SKU-KILL", 0, n)
	t.Logf("published %d notifications to %s in %s", n, edgenames.StreamName(region, events.ChannelEmail), time.Since(t0).Round(time.Millisecond))

	crashEnv := func(point string) []string {
		return []string{"GATEWAY_CRASH_AT=" + point, "GATEWAY_CRASH_AFTER_N=" + strconv.Itoa(gwCrashAfter)}
	}
	victim := startGateway(t, ctx, "gateway-"+region+".0", region, mp.SMTPAddr, crashEnv("after-claim")...)
	steady := startGateway(t, ctx, "gateway-"+region+".1", region, mp.SMTPAddr)
	tRun := time.Now()
	if err := steady.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	// The victim's settings without its crash point.
	base := slices.DeleteFunc(slices.Clone(victim.Env), func(kv string) bool { return strings.HasPrefix(kv, "GATEWAY_CRASH_") })

	type kill struct {
		point           string
		at              time.Time
		resumed         time.Duration
		duplicates      int
		mailpitAtKill   int
		startedToKilled time.Duration
	}
	points := []string{"after-claim", "after-send", "after-mark", "after-receipt"}
	var kills []*kill
	started := time.Now()
	for i, point := range points {
		select {
		case <-victim.Exited():
		case <-time.After(90 * time.Second):
			t.Fatalf("gateway 0 did not crash at %s within 90s\n%s", point, victim.Tail(30))
		}
		k := &kill{point: point, at: time.Now(), startedToKilled: time.Since(started)}
		k.mailpitAtKill, _ = mp.Count(ctx)
		if !strings.Contains(victim.Tail(20), "GATEWAY_CRASH_AT reached") {
			t.Fatalf("gateway 0 exited, but not at its crash point:\n%s", victim.Tail(30))
		}
		kills = append(kills, k)
		// Restart it as its supervisor would, armed for the next step (the
		// last restart runs without a crash point).
		victim.Env = slices.Clone(base)
		if i+1 < len(points) {
			victim.Env = append(victim.Env, crashEnv(points[i+1])...)
		}
		started = time.Now()
		if err := victim.Restart(); err != nil {
			t.Fatal(err)
		}
		k.resumed = waitSending(t, ctx, victim, started, gwResumeBound)
	}
	tKilled := time.Now()

	got := waitAllDelivered(t, ctx, mp, ids, 3*time.Minute)
	tDelivered := time.Now()
	records := checkReceipts(t, ids, time.Minute)

	// Attribute each duplicate to the first kill at or after its first copy
	// (Mailpit stamps a message when it receives it, before the 250 the
	// killed gateway was waiting for). The stamp may come a little after the
	// exit the test saw: a send whose last bytes were still in Mailpit's
	// socket when the gateway died is stored after (CI saw two copies
	// stamped 13 ms after the crash hook's last log line, and flagged them
	// as unexplained).
	const storeLag = 500 * time.Millisecond
	total, extra := 0, 0
	for _, id := range ids {
		ts := got[messageID(id)]
		total += len(ts)
		if len(ts) < 2 {
			continue
		}
		extra += len(ts) - 1
		owner := -1
		for j, k := range kills {
			if !ts[0].After(k.at.Add(storeLag)) {
				owner = j
				break
			}
		}
		if owner < 0 {
			t.Errorf("%s arrived %d times, the first at %s, more than %s after the last kill: a duplicate no crash explains", id, len(ts), ts[0].Format(time.RFC3339Nano), storeLag)
			continue
		}
		kills[owner].duplicates += len(ts) - 1
	}
	if stray := len(got) - n; stray != 0 {
		t.Errorf("Mailpit holds %d Message-IDs that are not this run's notifications", stray)
	}
	var lines []string
	for _, k := range kills {
		lines = append(lines, fmt.Sprintf("%s: killed %s after its start (Mailpit held %d), %d duplicates, restarted gateway sending again after %s",
			k.point, k.startedToKilled.Round(time.Millisecond), k.mailpitAtKill, k.duplicates, k.resumed.Round(time.Millisecond)))
		if k.duplicates > gwWorkers {
			t.Errorf("kill at %s: %d duplicates, above the bound of GATEWAY_WORKERS=%d", k.point, k.duplicates, gwWorkers)
		}
		if k.point == "after-send" && k.duplicates < 1 {
			t.Errorf("kill at after-send: no duplicate, but the crashing send itself must be sent again: the crash point did not act")
		}
		if k.resumed > gwResumeBound {
			t.Errorf("kill at %s: the restarted gateway sent again after %s, above %s", k.point, k.resumed, gwResumeBound)
		}
	}
	summary := fmt.Sprintf("GATEWAY KILLS %d notifications, %d emails in Mailpit (%d duplicates), %d receipt records, one sent event each; run %s (kills done after %s, all delivered %s after the last kill); %s",
		n, total, extra, records, tDelivered.Sub(tRun).Round(time.Millisecond), tKilled.Sub(tRun).Round(time.Millisecond),
		tDelivered.Sub(tKilled).Round(time.Millisecond), strings.Join(lines, "; "))
	t.Log(summary)
	fmt.Println(summary)
}

// TestGatewaySMTPDown30s: a run of gwOutageN emails through one gateway;
// once a third has arrived the SMTP server is stopped (the process killed,
// its port refusing connections) while the rest is published, and started
// again on the same port and database 30 s later. Nothing is lost, nothing
// is sent twice (by Message-ID), the gateway's memory stays flat during the
// outage (its heap in use and RSS, sampled every second from its /metrics,
// stay within memBound of what they were before), the notifications out at
// once stay within GATEWAY_MAX_ACK_PENDING (the rest waits in the stream),
// and everything is delivered within recoverBound of the restart: a
// notification waiting for its retry sleeps at most gwRetryDelay +
// gwMaxBackoff − gwAckWait (6 s), then the backlog drains.
func TestGatewaySMTPDown30s(t *testing.T) {
	const (
		gwOutageN     = 4000
		maxAckPending = 512
		outage        = 30 * time.Second
		recoverBound  = 45 * time.Second
		heapBound     = 16 << 20
		rssBound      = 32 << 20
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	region := ownRegion(t, ctx, "gwsmtp")
	mp := startMailpit(t, "mailpit-"+region)
	gw := startGateway(t, ctx, "gateway-"+region, region, mp.SMTPAddr, "GATEWAY_MAX_ACK_PENDING="+strconv.Itoa(maxAckPending))
	if err := gw.WaitReady(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	ids := publishEmails(t, ctx, region, "SKU-SMTP", 0, gwOutageN/2)
	testenv.Eventually(t, time.Minute, func() bool { c, err := mp.Count(ctx); return err == nil && c >= gwOutageN/3 },
		"Mailpit did not reach %d emails", gwOutageN/3)

	sample := func() (heap, rss float64) {
		h, err1 := gw.Metric(ctx, "go_memstats_heap_inuse_bytes")
		r, err2 := gw.Metric(ctx, "process_resident_memory_bytes")
		if err1 != nil || err2 != nil {
			t.Fatalf("gateway metrics: %v %v", err1, err2)
		}
		return h, r
	}
	heap0, rss0 := sample()
	atStop, _ := mp.Count(ctx)
	mp.Stop()
	tDown := time.Now()
	ids = append(ids, publishEmails(t, ctx, region, "SKU-SMTP", gwOutageN/2, gwOutageN)...)
	var maxHeap, maxRSS, maxOut, retries float64
	for time.Since(tDown) < outage {
		h, r := sample()
		maxHeap, maxRSS = max(maxHeap, h), max(maxRSS, r)
		if v, err := gw.Metric(ctx, "backinstock_gateway_in_flight"); err == nil {
			maxOut = max(maxOut, v)
		}
		if v, err := gw.Metric(ctx, "backinstock_gateway_consumer_ack_pending"); err == nil {
			maxOut = max(maxOut, v)
		}
		time.Sleep(time.Second)
	}
	retries, _ = gw.Metric(ctx, "backinstock_gateway_retries_total")
	if err := mp.Restart(); err != nil {
		t.Fatalf("restart mailpit: %v", err)
	}
	tUp := time.Now()
	got := waitAllDelivered(t, ctx, mp, ids, 2*time.Minute)
	recovered := time.Since(tUp)
	records := checkReceipts(t, ids, time.Minute)

	dups := 0
	for _, id := range ids {
		if c := len(got[messageID(id)]); c > 1 {
			dups += c - 1
		}
	}
	if dups > 0 {
		t.Errorf("%d emails were sent twice across the outage", dups)
	}
	if recovered > recoverBound {
		t.Errorf("everything was delivered %s after the SMTP server came back, above %s", recovered, recoverBound)
	}
	if maxHeap > heap0+heapBound {
		t.Errorf("heap in use rose from %.1f MiB to %.1f MiB during the outage (bound +%d MiB)", heap0/(1<<20), maxHeap/(1<<20), heapBound>>20)
	}
	if maxRSS > rss0+rssBound {
		t.Errorf("RSS rose from %.1f MiB to %.1f MiB during the outage (bound +%d MiB)", rss0/(1<<20), maxRSS/(1<<20), rssBound>>20)
	}
	if maxOut > maxAckPending {
		t.Errorf("%v notifications out at once, above GATEWAY_MAX_ACK_PENDING=%d", maxOut, maxAckPending)
	}
	if retries == 0 {
		t.Errorf("no retry was counted during the outage: the SMTP server was not down")
	}
	summary := fmt.Sprintf("GATEWAY SMTP DOWN %s: %d notifications, %d in Mailpit when it stopped, %d retries during the outage, no duplicate, all delivered %s after it came back (%d receipt records, one sent event each); heap in use %.1f → max %.1f MiB, RSS %.1f → max %.1f MiB, at most %v out at once",
		outage, len(ids), atStop, int(retries), recovered.Round(time.Millisecond), records,
		heap0/(1<<20), maxHeap/(1<<20), rss0/(1<<20), maxRSS/(1<<20), maxOut)
	t.Log(summary)
	fmt.Println(summary)
}
