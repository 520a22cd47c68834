package reports

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/services/engagement/internal/aggkeys"
)

// members are the (sku, region, channel) of both indexes that pass q's
// filters.
func (s *Store) members(ctx context.Context, q Query) ([][3]string, error) {
	seen := map[string]bool{}
	var out [][3]string
	for _, idx := range []string{aggkeys.ReportIndex, aggkeys.AttributionIndex} {
		ms, err := s.rdb.SMembers(ctx, idx).Result()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", idx, err)
		}
		for _, m := range ms {
			sku, region, channel, ok := aggkeys.ParseIndexMember(m)
			if !ok || seen[m] || !q.matches(sku, region, channel) {
				continue
			}
			seen[m] = true
			out = append(out, [3]string{sku, region, channel})
		}
	}
	return out, nil
}

// Performance reads the performance report for q.
func (s *Store) Performance(ctx context.Context, q Query) ([]Row, error) {
	members, err := s.members(ctx, q)
	if err != nil {
		return nil, err
	}
	days := q.Days()
	pipe := s.rdb.Pipeline()
	type reads struct {
		report, attribution []*redis.MapStringStringCmd
		waiting             *redis.MapStringStringCmd
	}
	rd := make([]reads, len(members))
	restockCmds := map[string][]*redis.StringCmd{}
	waitingCmds := map[string]*redis.MapStringStringCmd{}
	for i, m := range members {
		sku, region, channel := m[0], m[1], m[2]
		for _, day := range days {
			rd[i].report = append(rd[i].report, pipe.HGetAll(ctx, aggkeys.Report(sku, region, channel, day)))
			rd[i].attribution = append(rd[i].attribution, pipe.HGetAll(ctx, aggkeys.Attribution(sku, region, channel, day)))
		}
		pair := sku + "|" + region
		if _, ok := restockCmds[pair]; !ok {
			for _, day := range days {
				restockCmds[pair] = append(restockCmds[pair], pipe.HGet(ctx, aggkeys.Restocks(sku, region, day), aggkeys.RestocksField))
			}
		}
		if _, ok := waitingCmds[sku]; !ok {
			waitingCmds[sku] = pipe.HGetAll(ctx, aggkeys.Waiting(sku))
		}
		rd[i].waiting = waitingCmds[sku]
	}
	if len(members) == 0 {
		return []Row{}, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("read the performance report: %w", err)
	}
	cells := make([]cellSums, len(members))
	for i, m := range members {
		c := cellSums{sku: m[0], region: m[1], channel: m[2], report: map[string]int64{}, attribution: map[string]int64{}}
		for d := range days {
			if err := sumHash(c.report, rd[i].report[d].Val()); err != nil {
				return nil, fmt.Errorf("report of %s|%s|%s: %w", m[0], m[1], m[2], err)
			}
			if err := sumHash(c.attribution, rd[i].attribution[d].Val()); err != nil {
				return nil, fmt.Errorf("attribution of %s|%s|%s: %w", m[0], m[1], m[2], err)
			}
		}
		w := map[string]int64{}
		if err := sumHash(w, rd[i].waiting.Val()); err != nil {
			return nil, fmt.Errorf("waiting of %s: %w", m[0], err)
		}
		c.waiting = w[aggkeys.WaitingField(m[1], m[2])]
		cells[i] = c
	}
	restocks := map[string]int64{}
	for pair, cmds := range restockCmds {
		for _, c := range cmds {
			n, err := c.Int64()
			if err != nil && err != redis.Nil {
				return nil, fmt.Errorf("restocks of %s: %w", pair, err)
			}
			restocks[pair] += n
		}
	}
	users := map[string]int64{}
	for sku, c := range waitingCmds {
		w := map[string]int64{}
		if err := sumHash(w, c.Val()); err != nil {
			return nil, fmt.Errorf("waiting of %s: %w", sku, err)
		}
		for f, n := range w {
			if !strings.Contains(f, "|") { // aggkeys.WaitingUsersField(region) is the region
				users[sku+"|"+f] = n
			}
		}
	}
	return rows(cells, restocks, users, q.GroupBy), nil
}

// Lag is the restock → delivery lag series of q's rows, and how many
// deliveries had no known restock.
type Lag struct {
	Points    []LagPoint
	Unmatched int64
}

// Lag reads the lag series for q (its grouping does not matter).
func (s *Store) Lag(ctx context.Context, q Query) (Lag, error) {
	members, err := s.members(ctx, q)
	if err != nil {
		return Lag{}, err
	}
	days := q.Days()
	out := Lag{Points: []LagPoint{}}
	if len(members) == 0 {
		return out, nil
	}
	pipe := s.rdb.Pipeline()
	cmds := make([][]*redis.MapStringStringCmd, len(members))
	for i, m := range members {
		for _, day := range days {
			cmds[i] = append(cmds[i], pipe.HGetAll(ctx, aggkeys.Report(m[0], m[1], m[2], day)))
		}
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return Lag{}, fmt.Errorf("read the lag series: %w", err)
	}
	sums := make([]map[string]int64, len(days))
	maxes := make([]map[string]int64, len(days))
	for d := range days {
		sums[d], maxes[d] = map[string]int64{}, map[string]int64{}
		for i := range members {
			h := map[string]int64{}
			if err := sumHash(h, cmds[i][d].Val()); err != nil {
				return Lag{}, fmt.Errorf("lag of %v: %w", members[i], err)
			}
			for f, v := range h {
				sums[d][f] += v
				maxes[d][f] = max(maxes[d][f], v)
			}
		}
		out.Unmatched += sums[d][aggkeys.LagUnmatched]
	}
	out.Points = append(out.Points, lagSeries(days, sums, maxes)...)
	return out, nil
}

// DemandQuery selects the demand report: optionally one region, at most
// Limit SKUs, their sold-out time measured at Now.
type DemandQuery struct {
	Region string
	Limit  int
	Now    time.Time
}

// Demand reads the sold-out SKUs ranked by waiting wishlisters.
func (s *Store) Demand(ctx context.Context, q DemandQuery) ([]Demand, error) {
	ms, err := s.rdb.SMembers(ctx, aggkeys.SoldOut).Result()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", aggkeys.SoldOut, err)
	}
	type cand struct {
		sku, region    string
		stock, waiting *redis.StringCmd
	}
	var cands []cand
	pipe := s.rdb.Pipeline()
	for _, m := range ms {
		sku, region, ok := aggkeys.ParseSoldOutMember(m)
		if !ok || (q.Region != "" && q.Region != region) {
			continue
		}
		cands = append(cands, cand{sku: sku, region: region,
			stock:   pipe.HGet(ctx, aggkeys.Stock(sku), region),
			waiting: pipe.HGet(ctx, aggkeys.Waiting(sku), aggkeys.WaitingUsersField(region))})
	}
	out := []Demand{}
	if len(cands) == 0 {
		return out, nil
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("read the demand report: %w", err)
	}
	for _, c := range cands {
		// The set is brought in line after the stock script: a member a
		// crash left behind is checked against the stock itself.
		soldOut, since, ok := parseStock(c.stock.Val())
		if !ok || !soldOut {
			continue
		}
		n, err := c.waiting.Int64()
		if err != nil && err != redis.Nil {
			return nil, fmt.Errorf("waiting of %s|%s: %w", c.sku, c.region, err)
		}
		secs := int64(q.Now.Sub(since) / time.Second)
		out = append(out, Demand{SKU: c.sku, Region: c.region, Waiting: n, SoldOutSince: since, SoldOutSeconds: max(secs, 0)})
	}
	return rankDemand(out, q.Limit), nil
}
