//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"backinstock/scripts/internal/e2eenv"
)

const (
	// requestTimeout is REQUEST_TIMEOUT's documented default (inventory and
	// wishlist): the longest an API request takes to answer.
	requestTimeout = 4 * time.Second
	// answerMargin is what the test allows on top for the HTTP round trip
	// and scheduling on a loaded 2-core machine.
	answerMargin = time.Second
	// stallFor is how long redis-server stays paused: the 40 s.
	stallFor = 40 * time.Second
	// deliveryResumeBound: after SIGCONT, delivery at the edge resumes, and
	// a restock first tried during the stall reaches the edge, within this.
	// The consumer groups retry a failed batch after at most 5 s (their
	// back-off cap), the relay likewise; the rest is margin.
	deliveryResumeBound = 30 * time.Second
)

// TestRedisStall40s pauses redis-server (SIGSTOP) for 40 s while a
// 100,000-notification fan-out is on its way and writers keep calling both
// APIs, then resumes it (SIGCONT):
//
//   - every request, during the stall and after, answers within
//     REQUEST_TIMEOUT (plus the margin): 503 while Redis is stalled;
//   - every inventory write carries an Idempotency-Key and is retried with
//     it until it answers 2xx; each answer is exactly what one application
//     of that write gives in the sku's sequence (previous quantity,
//     episode, restock), and the final episodes are the transitions
//     written: no script ran twice, none was lost, no retry met a 409;
//   - a keyless write answered 2xx is one restock (episode 1); one answered
//     503 is applied at most once;
//   - every wishlist write is repeated until it answers 2xx (a DELETE may
//     then answer 404) and the wishlists end as the last writes say;
//   - /readyz of every process reports redis failing during the stall, and
//     every process is ready again after it, with no manual step;
//   - delivery resumes within deliveryResumeBound of SIGCONT, a restock
//     first tried during the stall reaches the edge once within it, and the
//     fan-out ends with every notification at the edge exactly once.
func TestRedisStall40s(t *testing.T) {
	if stack.Redis.Embedded() {
		t.Skip("no redis-server on PATH: the embedded stand-in cannot be paused (.ci/run installs redis-server)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	c := stack.Client()
	const writeRegion = "eu-west-1"

	// The fan-out in flight: 25,000 wishlisters × 4 channels in faultRegion.
	prefix := unique("st")
	sku := unique("console")
	lines := make([]e2eenv.ImportLine, faultUsers)
	for i := range lines {
		lines[i] = e2eenv.ImportLine{UserID: fmt.Sprintf("%s-%05d", prefix, i), SKU: sku, Region: faultRegion, Channels: channels}
	}
	mustImport(t, ctx, lines)
	// The probe: one wishlister of a sku restocked during the stall.
	probeUser, probeSKU := unique("probe-u"), unique("probe")
	must(t, c.AddWish(ctx, probeUser, probeSKU, writeRegion, []string{"app"}))
	exp := newExpectation()
	base := baselines(t, ctx)
	res := mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: faultRegion, Quantity: 100}, true)
	for _, l := range lines {
		exp.add(l.UserID, sku, faultRegion, res.Episode, channels...)
	}
	exp.add(probeUser, probeSKU, writeRegion, 1, "app")
	if _, err := edge.WaitCount(ctx, faultRegion, base[faultRegion], 8_000, 2*time.Minute); err != nil {
		t.Fatalf("before the stall: %v\n%s", err, stack.Logs(30))
	}

	rec := &recorder{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var inv []*stockWriter
	for i := range 8 {
		w := &stockWriter{c: c, rec: rec, sku: fmt.Sprintf("%s-w%d", prefix, i), region: writeRegion}
		inv = append(inv, w)
		wg.Go(func() { w.run(ctx, stop) })
	}
	var wls []*wishWriter
	for i := range 4 {
		w := &wishWriter{c: c, rec: rec, user: fmt.Sprintf("%s-u%d", prefix, i), skus: []string{prefix + "-a", prefix + "-b"}, region: writeRegion}
		wls = append(wls, w)
		wg.Go(func() { w.run(ctx, stop) })
	}
	kl := &keylessWriter{c: c, rec: rec, prefix: prefix + "-k", region: writeRegion}
	wg.Go(func() { kl.run(ctx, stop) })
	time.Sleep(2 * time.Second) // writes answered before the stall too

	stack.Log.Logf("redis-stall: pausing redis-server for %s", stallFor)
	must(t, stack.Redis.Pause())
	paused := time.Now()
	resumed := false
	defer func() {
		if !resumed {
			_ = stack.Redis.Resume()
		}
	}()
	rec.setPhase("stall")
	probe := &probeRestock{c: c, rec: rec, sku: probeSKU, region: writeRegion}
	wg.Go(func() { probe.run(ctx) })
	// Readiness of every process, once the services' pools are stuck in the
	// stall, each asked with a bound (a /readyz that does not answer is a
	// failure too), while the stall itself keeps its 40 s.
	readyProblems := make(chan []string, 1)
	go func() {
		time.Sleep(6 * time.Second)
		var mu sync.Mutex
		var out []string
		var rg sync.WaitGroup
		for _, p := range stack.Procs() {
			rg.Go(func() {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				code, checks, err := p.Ready(rctx)
				if err != nil || code != http.StatusServiceUnavailable || checks["redis"] == "ok" {
					mu.Lock()
					out = append(out, fmt.Sprintf("%s /readyz during the stall: %d %v %v, want 503 with redis failing within 5s", p.Name, code, checks, err))
					mu.Unlock()
				}
			})
		}
		rg.Wait()
		readyProblems <- out
	}()
	_, atStall, _ := edge.State(ctx, faultRegion)
	time.Sleep(stallFor - time.Since(paused))
	_, beforeResume, _ := edge.State(ctx, faultRegion)
	must(t, stack.Redis.Resume())
	resumed = true
	for _, p := range <-readyProblems {
		t.Error(p)
	}
	resumedAt := time.Now()
	rec.setPhase("after")
	stack.Log.Logf("redis-stall: resumed after %s; the edge of %s grew by %d during it", resumedAt.Sub(paused).Round(time.Millisecond), faultRegion, beforeResume.Total()-atStall.Total())

	// Delivery resumes by itself.
	var resumeDelay time.Duration
	for {
		_, last, err := edge.State(ctx, faultRegion)
		if err == nil && last.Total() > beforeResume.Total() {
			resumeDelay = time.Since(resumedAt)
			break
		}
		if time.Since(resumedAt) > deliveryResumeBound {
			t.Fatalf("no delivery at the edge within %s of the resume\n%s", deliveryResumeBound, stack.Logs(30))
		}
		time.Sleep(25 * time.Millisecond)
	}
	for _, p := range stack.Procs() {
		if err := p.WaitReady(ctx, deliveryResumeBound); err != nil {
			t.Errorf("after the stall: %v", err)
		}
	}
	probeAt := waitDelivered(t, ctx, writeRegion, base[writeRegion], probeSKU, resumedAt, deliveryResumeBound)
	time.Sleep(5 * time.Second) // writes answered after the stall too
	close(stop)
	wg.Wait()

	// What every writer saw.
	var problems []string
	for _, w := range inv {
		problems = append(problems, w.problems...)
		lv, err := getStock(ctx, c, w.sku, w.region)
		if err != nil {
			problems = append(problems, err.Error())
		} else if lv.Quantity != w.quantity || lv.Episode != w.episode {
			problems = append(problems, fmt.Sprintf("%s ends at quantity %d episode %d, its %d writes say %d, %d", w.sku, lv.Quantity, lv.Episode, w.writes, w.quantity, w.episode))
		}
	}
	for _, w := range wls {
		problems = append(problems, w.problems...)
		problems = append(problems, w.check(ctx)...)
	}
	problems = append(problems, kl.problems...)
	problems = append(problems, kl.check(ctx)...)
	problems = append(problems, probe.problems...)
	problems = append(problems, rec.problems(requestTimeout+answerMargin)...)
	for _, p := range problems {
		t.Error(p)
	}
	line := fmt.Sprintf("STALL redis paused %s; %s; delivery resumed %s after SIGCONT; probe restock at the edge %s after SIGCONT; %d stock writes, %d wishlist writes, %d keyless (%d answered 503)",
		stallFor, rec.summary(), resumeDelay.Round(time.Millisecond), probeAt.Round(time.Millisecond),
		sumWrites(inv), sumWishWrites(wls), len(kl.skus), len(kl.unknown))
	t.Log(line)
	fmt.Println(line)
	if resumeDelay > deliveryResumeBound || probeAt > deliveryResumeBound {
		t.Errorf("delivery resumed after %s, the probe arrived after %s; bound %s", resumeDelay, probeAt, deliveryResumeBound)
	}
	verify(t, ctx, "redis-stall-40s", base, exp, 3*time.Minute)
}

// recorder keeps every answer's latency by service and phase.
type recorder struct {
	mu    sync.Mutex
	phase string
	stats map[string]*phaseStats // "<service> <phase>"
	over  []string
}

type phaseStats struct {
	n, unavailable, conflicts int
	max                       time.Duration
}

func (r *recorder) setPhase(p string) {
	r.mu.Lock()
	r.phase = p
	r.mu.Unlock()
}

func (r *recorder) add(service, what string, code int, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stats == nil {
		r.stats = map[string]*phaseStats{}
	}
	phase := r.phase
	if phase == "" {
		phase = "before"
	}
	k := service + " " + phase
	s := r.stats[k]
	if s == nil {
		s = &phaseStats{}
		r.stats[k] = s
	}
	s.n++
	s.max = max(s.max, took)
	switch code {
	case http.StatusServiceUnavailable:
		s.unavailable++
	case http.StatusConflict:
		s.conflicts++
	}
	if took > requestTimeout+answerMargin {
		r.over = append(r.over, fmt.Sprintf("%s %s answered %d after %s (%s)", service, what, code, took.Round(time.Millisecond), phase))
	}
}

func (r *recorder) problems(bound time.Duration) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, o := range r.over {
		out = append(out, "over the "+bound.String()+" bound: "+o)
	}
	for k, s := range r.stats {
		if s.conflicts > 0 {
			out = append(out, fmt.Sprintf("%s: %d answers were 409 (a retry met a claim of an attempt that had already answered)", k, s.conflicts))
		}
	}
	for _, svc := range []string{"inventory", "wishlist"} {
		if s := r.stats[svc+" stall"]; s == nil || s.unavailable == 0 {
			out = append(out, svc+": no 503 during the stall (did the stall happen?)")
		}
	}
	return out
}

func (r *recorder) summary() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	keys := make([]string, 0, len(r.stats))
	for k := range r.stats {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		s := r.stats[k]
		parts = append(parts, fmt.Sprintf("%s: %d answers, %d were 503, max %s", k, s.n, s.unavailable, s.max.Round(time.Millisecond)))
	}
	return strings.Join(parts, "; ")
}

// attempt sends one request under a generous client-side limit (a hang
// shows as a latency far over the bound, not as a stuck test).
func attempt(ctx context.Context, c *e2eenv.Client, rec *recorder, service, method, u string, body any, hdr ...string) (int, []byte) {
	actx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	t0 := time.Now()
	code, b, err := c.Send(actx, method, u, body, hdr...)
	took := time.Since(t0)
	if err != nil {
		code, b = 0, []byte(err.Error())
	}
	rec.add(service, method+" "+u, code, took)
	return code, b
}

// retryPause is the wait between a 503 and its retry.
const retryPause = 100 * time.Millisecond

// stockWriter writes one sku's levels in a fixed cycle, each write with its
// own Idempotency-Key and retried with it until it answers 2xx, and checks
// every answer against the transition rule applied once.
type stockWriter struct {
	c           *e2eenv.Client
	rec         *recorder
	sku, region string

	writes            int
	quantity, episode int64
	problems          []string
}

var stockCycle = []int64{0, 5, 0, 3, 7, 0, 2}

func (w *stockWriter) run(ctx context.Context, stop <-chan struct{}) {
	armed := true // a sku never written is armed
	u := w.c.Inventory + "/v1/stock/" + url.PathEscape(w.sku)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		q := stockCycle[i%len(stockCycle)]
		want := e2eenv.StockResult{SKU: w.sku, Region: w.region, Quantity: q, Previous: w.quantity, Episode: w.episode}
		if q <= 0 {
			armed = true
		}
		if armed && q > 0 {
			want.Restock, want.Episode, armed = true, w.episode+1, false
		}
		key := fmt.Sprintf("%s-%d", w.sku, i)
		for {
			code, b := attempt(ctx, w.c, w.rec, "inventory", "PUT", u, e2eenv.StockUpdate{Region: w.region, Quantity: q}, "Idempotency-Key", key)
			if code == http.StatusOK {
				var got e2eenv.StockResult
				if err := json.Unmarshal(b, &got); err != nil || got != want {
					w.problems = append(w.problems, fmt.Sprintf("%s write %d (quantity %d): answered %s, one application gives %+v", w.sku, i, q, b, want))
				}
				break
			}
			if ctx.Err() != nil {
				return
			}
			if code != http.StatusServiceUnavailable && code != http.StatusConflict {
				w.problems = append(w.problems, fmt.Sprintf("%s write %d: %d %s", w.sku, i, code, b))
				return
			}
			time.Sleep(retryPause)
		}
		w.writes++
		w.quantity, w.episode = q, want.Episode
		time.Sleep(50 * time.Millisecond)
	}
}

func sumWrites(ws []*stockWriter) int {
	n := 0
	for _, w := range ws {
		n += w.writes
	}
	return n
}

// keylessWriter restocks a fresh sku (0 → 5, no Idempotency-Key) every
// 1.5 s: a 2xx must be that one restock; a 503's outcome is unknown, and
// is checked after the stall to be at most one application.
type keylessWriter struct {
	c           *e2eenv.Client
	rec         *recorder
	prefix      string
	region      string
	skus        []string
	unknown     []string
	problems    []string
	nextOrdinal int
}

func (w *keylessWriter) run(ctx context.Context, stop <-chan struct{}) {
	for {
		sku := fmt.Sprintf("%s%d", w.prefix, w.nextOrdinal)
		w.nextOrdinal++
		w.skus = append(w.skus, sku)
		code, b := attempt(ctx, w.c, w.rec, "inventory", "PUT", w.c.Inventory+"/v1/stock/"+url.PathEscape(sku), e2eenv.StockUpdate{Region: w.region, Quantity: 5})
		switch code {
		case http.StatusOK:
			var got e2eenv.StockResult
			want := e2eenv.StockResult{SKU: sku, Region: w.region, Quantity: 5, Previous: 0, Episode: 1, Restock: true}
			if err := json.Unmarshal(b, &got); err != nil || got != want {
				w.problems = append(w.problems, fmt.Sprintf("keyless %s: answered %s, want %+v", sku, b, want))
			}
		case http.StatusServiceUnavailable:
			w.unknown = append(w.unknown, sku)
		default:
			w.problems = append(w.problems, fmt.Sprintf("keyless %s: %d %s", sku, code, b))
		}
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(1500 * time.Millisecond):
		}
	}
}

// check: a keyless write answered 503 was applied once or not at all.
func (w *keylessWriter) check(ctx context.Context) []string {
	var out []string
	for _, sku := range w.unknown {
		lv, err := getStock(ctx, w.c, sku, w.region)
		var ae *e2eenv.APIError
		switch {
		case err == nil && (lv.Quantity != 5 || lv.Episode != 1):
			out = append(out, fmt.Sprintf("keyless %s answered 503 ends at %+v, want not applied or applied once", sku, lv))
		case err != nil && !(errors.As(err, &ae) && ae.Status == http.StatusNotFound):
			out = append(out, err.Error())
		}
	}
	return out
}

// probeRestock restocks a sku with one wishlister during the stall, with an
// Idempotency-Key, retrying until 2xx.
type probeRestock struct {
	c           *e2eenv.Client
	rec         *recorder
	sku, region string
	problems    []string
}

func (p *probeRestock) run(ctx context.Context) {
	u := p.c.Inventory + "/v1/stock/" + url.PathEscape(p.sku)
	for {
		code, b := attempt(ctx, p.c, p.rec, "inventory", "PUT", u, e2eenv.StockUpdate{Region: p.region, Quantity: 3}, "Idempotency-Key", p.sku+"-restock")
		if code == http.StatusOK {
			var got e2eenv.StockResult
			if err := json.Unmarshal(b, &got); err != nil || !got.Restock || got.Episode != 1 {
				p.problems = append(p.problems, fmt.Sprintf("probe restock answered %s, want episode 1", b))
			}
			return
		}
		if code != http.StatusServiceUnavailable || ctx.Err() != nil {
			p.problems = append(p.problems, fmt.Sprintf("probe restock: %d %s", code, b))
			return
		}
		time.Sleep(retryPause)
	}
}

// wishWriter cycles one user through adds, preference changes and
// removals, each repeated until it answers 2xx (a removal repeated after a
// 503 may find the entry gone: 404), and remembers what the last write of
// each entry said.
type wishWriter struct {
	c      *e2eenv.Client
	rec    *recorder
	user   string
	skus   []string
	region string

	writes   int
	entries  map[string][]string // sku -> channels; absent: removed
	problems []string
}

func (w *wishWriter) run(ctx context.Context, stop <-chan struct{}) {
	w.entries = map[string][]string{}
	chans := [][]string{{"app"}, {"email", "sms"}, {"web"}}
	base := w.c.Wishlist + "/v1/users/" + url.PathEscape(w.user)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		sku := w.skus[i%len(w.skus)]
		var method, u string
		var body any
		switch i % 3 {
		case 0, 1:
			method, u, body = "PUT", base+"/wishlist/"+url.PathEscape(sku), map[string]any{"region": w.region, "channels": chans[i%len(chans)]}
		case 2:
			method, u = "DELETE", base+"/wishlist/"+url.PathEscape(sku)
		}
		if i%5 == 4 {
			method, u, body = "PUT", base+"/preferences", map[string]any{"locale": "en-GB", "channels": chans[i%len(chans)]}
		}
		retried := false
		for {
			code, b := attempt(ctx, w.c, w.rec, "wishlist", method, u, body)
			ok := code == http.StatusOK || code == http.StatusNoContent ||
				(method == "DELETE" && code == http.StatusNotFound && (retried || w.entries[sku] == nil))
			if ok {
				break
			}
			if code != http.StatusServiceUnavailable || ctx.Err() != nil {
				w.problems = append(w.problems, fmt.Sprintf("%s %s: %d %s", method, u, code, b))
				return
			}
			retried = true
			time.Sleep(retryPause)
		}
		w.writes++
		switch {
		case strings.HasSuffix(u, "/preferences"):
		case method == "PUT":
			w.entries[sku] = chans[i%len(chans)]
		default:
			delete(w.entries, sku)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check compares the user's wishlist with what its last writes said.
func (w *wishWriter) check(ctx context.Context) []string {
	code, b, err := w.c.Send(ctx, http.MethodGet, w.c.Wishlist+"/v1/users/"+url.PathEscape(w.user)+"/wishlist", nil)
	if err != nil || code != http.StatusOK {
		return []string{fmt.Sprintf("list %s: %d %s %v", w.user, code, b, err)}
	}
	var list struct {
		Items []struct {
			SKU      string   `json:"sku"`
			Region   string   `json:"region"`
			Channels []string `json:"channels"`
		} `json:"items"`
	}
	if err := json.Unmarshal(b, &list); err != nil {
		return []string{err.Error()}
	}
	got := map[string][]string{}
	for _, it := range list.Items {
		if it.Region != w.region {
			return []string{fmt.Sprintf("%s %s in region %s", w.user, it.SKU, it.Region)}
		}
		got[it.SKU] = it.Channels
	}
	if len(got) != len(w.entries) {
		return []string{fmt.Sprintf("%s ends with %v, its last writes say %v", w.user, got, w.entries)}
	}
	for sku, ch := range w.entries {
		want := slices.Clone(ch)
		slices.Sort(want)
		have := slices.Clone(got[sku])
		slices.Sort(have)
		if !slices.Equal(want, have) {
			return []string{fmt.Sprintf("%s ends with %v, its last writes say %v", w.user, got, w.entries)}
		}
	}
	return nil
}

func sumWishWrites(ws []*wishWriter) int {
	n := 0
	for _, w := range ws {
		n += w.writes
	}
	return n
}

// getStock is GET /v1/stock/{sku}?region=.
func getStock(ctx context.Context, c *e2eenv.Client, sku, region string) (e2eenv.StockResult, error) {
	code, b, err := c.Send(ctx, http.MethodGet, c.Inventory+"/v1/stock/"+url.PathEscape(sku)+"?region="+url.QueryEscape(region), nil)
	if err != nil {
		return e2eenv.StockResult{}, err
	}
	if code != http.StatusOK {
		return e2eenv.StockResult{}, &e2eenv.APIError{Method: "GET", URL: "/v1/stock/" + sku, Status: code, Body: string(b)}
	}
	var lv e2eenv.StockResult
	err = json.Unmarshal(b, &lv)
	return lv, err
}

// waitDelivered waits until a notification of sku is in region's edge
// stream after baseline and returns how long after since it was seen.
func waitDelivered(t *testing.T, ctx context.Context, region string, baseline e2eenv.Mark, sku string, since time.Time, bound time.Duration) time.Duration {
	t.Helper()
	for {
		got, err := edge.Collect(ctx, region, baseline, func(d *e2eenv.Delivered) bool { return d.SKU == sku })
		if err == nil && len(got) > 0 {
			return time.Since(since)
		}
		if time.Since(since) > bound {
			t.Fatalf("the restock of %s tried during the stall is not at the edge of %s within %s of the resume\n%s", sku, region, bound, stack.Logs(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
