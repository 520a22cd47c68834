package connlimit

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// conn is connection cid of user on server, started cid seconds after t0
// (so a higher cid is newer, as on one server).
func conn(server, user string, cid uint64) Conn {
	return Conn{Server: server, CID: cid, User: user, Start: t0.Add(time.Duration(cid) * time.Second)}
}

func ids(cs []Conn) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s/%d", c.Server, c.CID))
	}
	return out
}

// op is one step: what happens, and the connections it must close.
type op struct {
	do   func(*Tracker) []Conn
	kick []string
}

func connect(c Conn) func(*Tracker) []Conn {
	return func(t *Tracker) []Conn { return t.Connect(c, t0) }
}

func disconnect(c Conn) func(*Tracker) []Conn {
	return func(t *Tracker) []Conn { t.Disconnect(c.User, c.ID()); return nil }
}

func TestTracker(t *testing.T) {
	a := func(cid uint64) Conn { return conn("s1", "alice", cid) }
	b := func(cid uint64) Conn { return conn("s1", "bob", cid) }
	tests := []struct {
		name  string
		limit int
		ops   []op
		users int
		conns int
	}{
		{"the third connection of a user over a limit of two is closed", 2, []op{
			{connect(a(1)), nil}, {connect(a(2)), nil}, {connect(a(3)), []string{"s1/3"}},
		}, 1, 3},
		{"another user is not affected", 2, []op{
			{connect(a(1)), nil}, {connect(a(2)), nil}, {connect(a(3)), []string{"s1/3"}}, {connect(b(4)), nil}, {connect(b(5)), nil},
		}, 2, 5},
		{"a closed connection frees a place", 2, []op{
			{connect(a(1)), nil}, {connect(a(2)), nil}, {disconnect(a(1)), nil}, {connect(a(3)), nil},
		}, 1, 2},
		{"a connection asked to close does not count", 2, []op{
			{connect(a(1)), nil}, {connect(a(2)), nil}, {connect(a(3)), []string{"s1/3"}}, {connect(a(4)), []string{"s1/4"}},
			{disconnect(a(3)), nil}, {disconnect(a(4)), nil}, {connect(a(5)), []string{"s1/5"}},
		}, 1, 3},
		{"a repeated connect event changes nothing", 2, []op{
			{connect(a(1)), nil}, {connect(a(2)), nil}, {connect(a(2)), nil}, {connect(a(1)), nil},
		}, 1, 2},
		{"an unknown disconnect is ignored", 2, []op{
			{disconnect(a(9)), nil}, {connect(a(1)), nil},
		}, 1, 1},
		{"connections on two servers count together", 2, []op{
			{connect(conn("s1", "alice", 1)), nil}, {connect(conn("s2", "alice", 2)), nil}, {connect(conn("s1", "alice", 3)), []string{"s1/3"}},
		}, 1, 3},
		{"a server that shut down takes its connections along", 2, []op{
			{connect(conn("s1", "alice", 1)), nil}, {connect(conn("s2", "alice", 2)), nil},
			{func(t *Tracker) []Conn { t.ServerGone("s1"); return nil }, nil},
			{connect(conn("s2", "alice", 3)), nil},
		}, 1, 2},
		{"a connection the server does not hold is forgotten", 1, []op{
			{connect(a(1)), nil}, {connect(a(2)), []string{"s1/2"}},
			{func(t *Tracker) []Conn { t.Gone(ID{"s1", 2}); return nil }, nil},
		}, 1, 1},
		{"a list of 5 over a limit of 2 closes the 3 newest", 2, []op{
			{func(t *Tracker) []Conn {
				t.Reset([]Conn{a(5), a(1), b(7), a(3), a(4), a(2)})
				return t.Excess(t0)
			}, []string{"s1/3", "s1/4", "s1/5"}},
		}, 2, 6},
		{"events gathered with a list are replayed before deciding", 2, []op{
			// The list holds 1 and 2; a 0 that connected and left while it
			// was gathered must not make anyone over the limit.
			{func(t *Tracker) []Conn {
				t.Reset([]Conn{a(1), a(2)})
				t.Apply(a(0))
				t.Disconnect("alice", a(0).ID())
				t.Apply(a(2))
				return t.Excess(t0)
			}, nil},
		}, 1, 2},
		{"a reset forgets the kick marks", 1, []op{
			{connect(a(1)), nil}, {connect(a(2)), []string{"s1/2"}},
			{func(t *Tracker) []Conn { t.Reset([]Conn{a(1), a(2)}); return t.Excess(t0) }, []string{"s1/2"}},
		}, 1, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New(tt.limit)
			for i, o := range tt.ops {
				got := ids(o.do(tr))
				want := o.kick
				if want == nil {
					want = []string{}
				}
				if !slices.Equal(got, want) {
					t.Fatalf("step %d: closed %v, want %v", i, got, want)
				}
			}
			if tr.Users() != tt.users || tr.Conns() != tt.conns {
				t.Fatalf("users %d conns %d, want %d %d", tr.Users(), tr.Conns(), tt.users, tt.conns)
			}
		})
	}
}

func TestRekick(t *testing.T) {
	tr := New(1)
	tr.Connect(conn("s1", "alice", 1), t0)
	if got := ids(tr.Connect(conn("s1", "alice", 2), t0)); !slices.Equal(got, []string{"s1/2"}) {
		t.Fatalf("kicked %v", got)
	}
	if got := tr.Rekick(t0.Add(4*time.Second), 5*time.Second); len(got) != 0 {
		t.Fatalf("rekicked too early: %v", ids(got))
	}
	if got := ids(tr.Rekick(t0.Add(5*time.Second), 5*time.Second)); !slices.Equal(got, []string{"s1/2"}) {
		t.Fatalf("rekick = %v", got)
	}
	if got := tr.Rekick(t0.Add(6*time.Second), 5*time.Second); len(got) != 0 {
		t.Fatalf("rekicked again at once: %v", ids(got))
	}
	tr.Disconnect("alice", ID{"s1", 2})
	if got := tr.Rekick(t0.Add(time.Minute), 5*time.Second); len(got) != 0 {
		t.Fatalf("rekicked a closed connection: %v", ids(got))
	}
	if tr.Count("alice") != 1 {
		t.Fatalf("alice has %d", tr.Count("alice"))
	}
}
