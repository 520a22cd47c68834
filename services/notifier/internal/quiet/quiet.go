// Package quiet decides whether a notification falls inside its recipient's
// quiet hours and, if so, when it may be released. It holds no I/O so the
// rule, including the wrap past midnight and daylight-saving days, is tested
// by table.
package quiet

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Window is a daily [Start, End) range in minutes after local midnight. It
// wraps past midnight when End < Start and is empty when they are equal.
type Window struct {
	Start, End int
}

// ParseClock reads "HH:MM" into minutes after midnight.
func ParseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("clock %q: want HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 {
		return 0, fmt.Errorf("clock %q: want HH:MM between 00:00 and 23:59", s)
	}
	return hh*60 + mm, nil
}

// ParseWindow reads a start and end "HH:MM" pair.
func ParseWindow(start, end string) (Window, error) {
	s, err := ParseClock(start)
	if err != nil {
		return Window{}, err
	}
	e, err := ParseClock(end)
	if err != nil {
		return Window{}, err
	}
	return Window{Start: s, End: e}, nil
}

// Contains reports whether minute-of-day m is inside the window.
func (w Window) Contains(m int) bool {
	switch {
	case w.Start == w.End:
		return false
	case w.Start < w.End:
		return m >= w.Start && m < w.End
	default:
		return m >= w.Start || m < w.End
	}
}

// Zones caches loaded time zones: LoadLocation reads the zoneinfo database
// from disk, too slow to do per notification.
type Zones struct {
	mu sync.Mutex
	m  map[string]*time.Location
}

// Load returns the named IANA zone.
func (z *Zones) Load(name string) (*time.Location, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if loc, ok := z.m[name]; ok {
		return loc, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time zone %q: %w", name, err)
	}
	if z.m == nil {
		z.m = map[string]*time.Location{}
	}
	z.m[name] = loc
	return loc, nil
}

// ReleaseAt reports whether now falls inside w in loc and, if so, the
// instant the window ends (the next local End after now). On a day whose
// End does not exist locally (a spring-forward gap) time.Date normalises it
// forward, so the hold still ends.
func ReleaseAt(now time.Time, loc *time.Location, w Window) (held bool, release time.Time) {
	local := now.In(loc)
	m := local.Hour()*60 + local.Minute()
	if !w.Contains(m) {
		return false, time.Time{}
	}
	y, mo, d := local.Date()
	end := time.Date(y, mo, d, w.End/60, w.End%60, 0, 0, loc)
	if !end.After(now) {
		end = time.Date(y, mo, d+1, w.End/60, w.End%60, 0, 0, loc)
	}
	return true, end
}
