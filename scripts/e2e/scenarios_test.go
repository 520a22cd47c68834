//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"backinstock/scripts/internal/e2eenv"
	"backinstock/topics/events"
)

// TestRestockReachesExactlyTheRightSet: 3 regions × 4 channels, 3,000 users
// with every combination of channels, two skus; each restock reaches exactly
// the (user, channel) pairs that wished for the sku in that region, once,
// and a later stock increase (not a restock) sends nothing more.
func TestRestockReachesExactlyTheRightSet(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := stack.Client()
	skuA, skuB := unique("kettle"), unique("toaster")
	prefix := unique("u")
	const users = 3000
	regions := stack.Regions

	type entry struct {
		user, sku, region string
		chans             []string
	}
	var entries []entry
	for i := range users {
		u := fmt.Sprintf("%s-%05d", prefix, i)
		r := regions[i%len(regions)]
		entries = append(entries, entry{u, skuA, r, subset(i%15 + 1)})
		if i%2 == 0 {
			// Another region for the second sku: a user's entries are per sku.
			entries = append(entries, entry{u, skuB, regions[(i/2)%len(regions)], subset((i/3)%15 + 1)})
		}
	}
	// Most through the bulk import, the last 60 one by one through PUT.
	var lines []e2eenv.ImportLine
	for _, e := range entries[:len(entries)-60] {
		lines = append(lines, e2eenv.ImportLine{UserID: e.user, SKU: e.sku, Region: e.region, Channels: e.chans})
	}
	mustImport(t, ctx, lines)
	for _, e := range entries[len(entries)-60:] {
		if err := c.AddWish(ctx, e.user, e.sku, e.region, e.chans); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range regions {
		want := 0
		for _, e := range entries {
			if e.sku == skuA && e.region == r {
				want++
			}
		}
		n, err := c.Wishlisters(ctx, skuA, r)
		if err != nil || n != int64(want) {
			t.Fatalf("wishlisters of %s in %s = %d (%v), want %d", skuA, r, n, err, want)
		}
	}

	base := baselines(t, ctx)
	exp := newExpectation()
	episodes := map[string]int64{}
	for _, sku := range []string{skuA, skuB} {
		for _, r := range regions {
			res := mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: r, Quantity: 5,
				Product: &events.Product{Title: "Product " + sku, Price: "19.99"}}, true)
			episodes[sku+"|"+r] = res.Episode
		}
	}
	// More stock is not a restock: nobody is told again.
	for _, sku := range []string{skuA, skuB} {
		for _, r := range regions {
			mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: r, Quantity: 9}, false)
		}
	}
	for _, e := range entries {
		exp.add(e.user, e.sku, e.region, episodes[e.sku+"|"+e.region], e.chans...)
	}
	verify(t, ctx, "restock-right-set", base, exp, 2*time.Minute)
}

// TestUnsubscribesAndOptOutsRespected: removed entries, unsubscribed users
// and per-channel opt-outs get nothing on the channels they left; a user
// who re-adds with fewer channels gets only those.
func TestUnsubscribesAndOptOutsRespected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := stack.Client()
	sku := unique("blender")
	prefix := unique("o")
	const users = 600
	var lines []e2eenv.ImportLine
	for i := range users {
		lines = append(lines, e2eenv.ImportLine{UserID: fmt.Sprintf("%s-%04d", prefix, i), SKU: sku,
			Region: stack.Regions[i%len(stack.Regions)], Channels: channels})
	}
	mustImport(t, ctx, lines)

	exp := newExpectation()
	for i, l := range lines {
		var err error
		switch i % 6 {
		case 0: // removed from the wishlist
			err = c.RemoveWish(ctx, l.UserID, sku)
		case 1: // unsubscribed from everything
			err = c.SetPreferences(ctx, l.UserID, e2eenv.Preferences{Unsubscribed: true})
		case 2: // no email, no sms
			err = c.SetPreferences(ctx, l.UserID, e2eenv.Preferences{OptOut: []string{"email", "sms"}})
		case 3: // no app
			err = c.SetPreferences(ctx, l.UserID, e2eenv.Preferences{OptOut: []string{"app"}})
		case 4: // removed, then added back on web only
			if err = c.RemoveWish(ctx, l.UserID, sku); err == nil {
				err = c.AddWish(ctx, l.UserID, sku, l.Region, []string{"web"})
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	base := baselines(t, ctx)
	episodes := map[string]int64{}
	for _, r := range stack.Regions {
		episodes[r] = mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: r, Quantity: 3}, true).Episode
	}
	for i, l := range lines {
		ep := episodes[l.Region]
		switch i % 6 {
		case 2:
			exp.add(l.UserID, sku, l.Region, ep, "app", "web")
		case 3:
			exp.add(l.UserID, sku, l.Region, ep, "web", "email", "sms")
		case 4:
			exp.add(l.UserID, sku, l.Region, ep, "web")
		case 5:
			exp.add(l.UserID, sku, l.Region, ep, channels...)
		}
	}
	verify(t, ctx, "unsubscribe-opt-out", base, exp, 2*time.Minute)
}

// TestStockAwareBatches: a stock-aware restock notifies per_unit × stock of
// the earliest wishlisters per wave; a lower stock shrinks the next wave and
// a sold-out sku stops the fan-out, so exactly the earliest 30 + 6 hear of it.
func TestStockAwareBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const region = "eu-west-1"
	sku := unique("console")
	prefix := unique("s")
	const users = 400
	t0 := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	var lines []e2eenv.ImportLine
	for i := range users {
		at := t0.Add(time.Duration(i) * time.Second)
		lines = append(lines, e2eenv.ImportLine{UserID: fmt.Sprintf("%s-%04d", prefix, i), SKU: sku, Region: region,
			Channels: []string{"app", "email"}, At: &at})
	}
	// Imported in reverse so the order comes from the wishlist times, not
	// from the order of writing.
	for i, j := 0, len(lines)-1; i < j; i, j = i+1, j-1 {
		lines[i], lines[j] = lines[j], lines[i]
	}
	mustImport(t, ctx, lines)

	base := baselines(t, ctx)
	res := mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: region, Quantity: 10,
		Delivery: &events.Delivery{Mode: events.DeliveryStockAware, PerUnit: 3, MinStock: 1, IntervalMS: 3000}}, true)
	// Wave 1: 3 × 10 = 30 users, 2 channels each.
	if _, err := edge.WaitCount(ctx, region, base[region], 60, time.Minute); err != nil {
		t.Fatalf("wave 1: %v\n%s", err, stack.Logs(30))
	}
	mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: region, Quantity: 2}, false)
	// Wave 2: 3 × 2 = 6 more.
	if _, err := edge.WaitCount(ctx, region, base[region], 72, time.Minute); err != nil {
		t.Fatalf("wave 2: %v\n%s", err, stack.Logs(30))
	}
	mustStock(t, ctx, sku, e2eenv.StockUpdate{Region: region, Quantity: 0}, false)
	// Two intervals without a wave: the sold-out sku stopped the fan-out.
	if err := edge.WaitQuiet(ctx, region, 7*time.Second, time.Minute); err != nil {
		t.Fatal(err)
	}
	exp := newExpectation()
	for i := range 36 {
		exp.add(fmt.Sprintf("%s-%04d", prefix, i), sku, region, res.Episode, "app", "email")
	}
	verify(t, ctx, "stock-aware-batches", base, exp, time.Minute)
}
