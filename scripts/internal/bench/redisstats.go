package bench

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// cmdStat is one command's line of redis-server's INFO commandstats.
type cmdStat struct {
	calls int64
	usec  int64
}

// redisCommands reads INFO commandstats: what each command cost the
// server, so a run can say where redis-server's CPU per notification went.
// go-redis splits the sections and lines; each value is
// "calls=…,usec=…,…".
func redisCommands(ctx context.Context, rdb *redis.Client) (map[string]cmdStat, error) {
	info, err := rdb.InfoMap(ctx, "commandstats").Result()
	if err != nil {
		return nil, err
	}
	out := map[string]cmdStat{}
	for name, fields := range info["Commandstats"] {
		var s cmdStat
		for _, kv := range strings.Split(fields, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				s.calls = n
			case "usec":
				s.usec = n
			}
		}
		out[strings.TrimPrefix(name, "cmdstat_")] = s
	}
	return out, nil
}

// commandsPerMillion formats what changed from a to b, per million
// notifications, by server time spent, largest first.
func commandsPerMillion(a, b map[string]cmdStat, n uint64) string {
	type row struct {
		name string
		d    cmdStat
	}
	var rows []row
	for name, s := range b {
		d := cmdStat{calls: s.calls - a[name].calls, usec: s.usec - a[name].usec}
		if d.calls > 0 {
			rows = append(rows, row{name, d})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].d.usec > rows[j].d.usec })
	per := 1e6 / float64(max(n, 1))
	var parts []string
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %.0f calls %.2f s", r.name, float64(r.d.calls)*per, float64(r.d.usec)*per/1e6))
	}
	return strings.Join(parts, ", ")
}
