// Package connlimit decides which edge connections exceed the per-user
// limit: the live connections of every user, as the NATS system account
// reports them (connect and disconnect events, connection lists), and, for
// each user over the limit, the newest connections beyond it. The oldest
// connections always stay, so a user's 17th connection is the one closed,
// never one that was already working. No I/O: internal/edgeguard feeds it
// and carries out its answers.
package connlimit

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// Conn is one live connection of a user.
type Conn struct {
	Server string // id of the nats-server holding it
	CID    uint64 // its connection id on that server
	User   string // the user public key: one per user_id (edgeauth)
	Start  time.Time
	UserID string // for the logs, where known
}

// ID names a connection across a cluster.
type ID struct {
	Server string
	CID    uint64
}

// ID is the connection's id.
func (c Conn) ID() ID { return ID{c.Server, c.CID} }

type entry struct {
	Conn
	kicked time.Time // zero: not asked to close
}

// Tracker holds the live connections and the limit. It is not safe for
// concurrent use: one goroutine owns it.
type Tracker struct {
	limit int
	users map[string]map[ID]*entry
	conns int
}

// New returns an empty tracker allowing limit connections per user.
func New(limit int) *Tracker {
	return &Tracker{limit: limit, users: map[string]map[ID]*entry{}}
}

// Connect records c (again: a no-op) and returns the connections of its user
// to close now.
func (t *Tracker) Connect(c Conn, now time.Time) []Conn {
	t.add(c)
	return t.excess(c.User, now)
}

// Apply records c without deciding anything: the replay of events that
// arrived while a connection list was being gathered, after which Excess
// decides for everyone at once. Deciding at each replayed step could close a
// connection for a moment that never existed (a connect replayed before the
// disconnect that had preceded the list).
func (t *Tracker) Apply(c Conn) { t.add(c) }

func (t *Tracker) add(c Conn) {
	m := t.users[c.User]
	if m == nil {
		m = map[ID]*entry{}
		t.users[c.User] = m
	}
	if _, ok := m[c.ID()]; ok {
		return
	}
	m[c.ID()] = &entry{Conn: c}
	t.conns++
}

// Disconnect forgets a connection (unknown ones are ignored: the event of
// one that closed before the list was gathered).
func (t *Tracker) Disconnect(user string, id ID) {
	m := t.users[user]
	if _, ok := m[id]; !ok {
		return
	}
	delete(m, id)
	t.conns--
	if len(m) == 0 {
		delete(t.users, user)
	}
}

// Gone forgets a connection known only by its id (the server answered that
// it holds no such connection).
func (t *Tracker) Gone(id ID) {
	for user, m := range t.users {
		if _, ok := m[id]; ok {
			t.Disconnect(user, id)
			return
		}
	}
}

// ServerGone forgets every connection of a server that shut down: its
// clients are gone with it, and their disconnect events may never come.
func (t *Tracker) ServerGone(server string) {
	for user, m := range t.users {
		for id := range m {
			if id.Server == server {
				t.Disconnect(user, id)
			}
		}
	}
}

// Reset replaces everything with a connection list (kick marks included:
// a connection asked to close that is still listed is judged again).
func (t *Tracker) Reset(conns []Conn) {
	t.users = map[string]map[ID]*entry{}
	t.conns = 0
	for _, c := range conns {
		t.add(c)
	}
}

// Excess returns, for every user, the connections to close now.
func (t *Tracker) Excess(now time.Time) []Conn {
	var out []Conn
	for _, user := range slices.Sorted(maps.Keys(t.users)) {
		out = append(out, t.excess(user, now)...)
	}
	return out
}

// Rekick returns the connections asked to close at least after ago that are
// still listed (the kick was lost, or its disconnect event was), marking
// them asked again.
func (t *Tracker) Rekick(now time.Time, after time.Duration) []Conn {
	var out []Conn
	for _, m := range t.users {
		for _, e := range m {
			if !e.kicked.IsZero() && now.Sub(e.kicked) >= after {
				e.kicked = now
				out = append(out, e.Conn)
			}
		}
	}
	slices.SortFunc(out, older)
	return out
}

// excess marks and returns the user's connections beyond the limit, newest
// first to go: connections already asked to close do not count, they are
// on their way out.
func (t *Tracker) excess(user string, now time.Time) []Conn {
	m := t.users[user]
	live := make([]*entry, 0, len(m))
	for _, e := range m {
		if e.kicked.IsZero() {
			live = append(live, e)
		}
	}
	if len(live) <= t.limit {
		return nil
	}
	slices.SortFunc(live, func(a, b *entry) int { return older(a.Conn, b.Conn) })
	var out []Conn
	for _, e := range live[t.limit:] {
		e.kicked = now
		out = append(out, e.Conn)
	}
	return out
}

// older orders by start time, then server and connection id (a server
// numbers its connections in order, so ties within one server keep it).
func older(a, b Conn) int {
	return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.Server, b.Server), cmp.Compare(a.CID, b.CID))
}

// Users is the number of users with a live connection; Conns the number of
// connections (those asked to close included, until they are gone).
func (t *Tracker) Users() int { return len(t.users) }

// Conns is the number of tracked connections.
func (t *Tracker) Conns() int { return t.conns }

// Count is the number of tracked connections of user.
func (t *Tracker) Count(user string) int { return len(t.users[user]) }
