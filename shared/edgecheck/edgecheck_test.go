package edgecheck

import (
	"fmt"
	"strings"
	"testing"
)

func TestTally(t *testing.T) {
	d := func(id, user, ch string) Delivered {
		return Delivered{NotificationID: id, MsgID: id, UserID: user, Region: "us-east-1", Channel: ch, Subject: "edge.us-east-1." + ch + "." + user}
	}
	bad := d("n3", "u3", "app")
	bad.MsgID = "other"
	cases := []struct {
		name     string
		expected []string
		got      []Delivered
		want     Counts
		ok       bool
	}{
		{"exactly once", []string{"n1", "n2"}, []Delivered{d("n1", "u1", "app"), d("n2", "u2", "sms")},
			Counts{Expected: 2, Delivered: 2, Distinct: 2}, true},
		{"duplicate", []string{"n1", "n2"}, []Delivered{d("n1", "u1", "app"), d("n2", "u2", "sms"), d("n1", "u1", "app")},
			Counts{Expected: 2, Delivered: 3, Distinct: 2, Duplicates: 1}, false},
		{"missing", []string{"n1", "n2"}, []Delivered{d("n1", "u1", "app")},
			Counts{Expected: 2, Delivered: 1, Distinct: 1, Missing: 1}, false},
		{"unexpected", []string{"n1"}, []Delivered{d("n1", "u1", "app"), d("n9", "u9", "web")},
			Counts{Expected: 1, Delivered: 2, Distinct: 2, Unexpected: 1}, false},
		{"msg id differs", []string{"n3"}, []Delivered{bad},
			Counts{Expected: 1, Delivered: 1, Distinct: 1, BadHeaders: 1}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			exp := map[string]bool{}
			for _, id := range c.expected {
				exp[id] = true
			}
			got := Tally(c.name, exp, c.got)
			got.Examples, got.Scenario = nil, ""
			if got.String() != c.want.String() {
				t.Errorf("Tally = %+v, want %+v", got, c.want)
			}
			if got.OK() != c.ok {
				t.Errorf("OK() = %v, want %v", got.OK(), c.ok)
			}
		})
	}
}

// TestTallyExamplesEveryKind: a kind found in bulk leaves room for examples
// of the others.
func TestTallyExamplesEveryKind(t *testing.T) {
	var got []Delivered
	exp := map[string]bool{"gone": true}
	for i := range 10 {
		id := fmt.Sprintf("n%d", i)
		exp[id] = true
		d := Delivered{NotificationID: id, UserID: "u", Region: "r", Channel: "app", Subject: "edge.r.app.u"}
		got = append(got, d, d) // no Msg-Id, twice
	}
	c := Tally("kinds", exp, got)
	s := c.String()
	for _, want := range []string{"duplicates=10", "missing=1", "bad_headers=20", "e.g. duplicate n0", "e.g. bad header/subject: msg-id", "e.g. missing gone"} {
		if !strings.Contains(s, want) {
			t.Errorf("%s\nlacks %q", s, want)
		}
	}
	if len(c.Examples) > 8 {
		t.Errorf("%d examples, want a few of each kind", len(c.Examples))
	}
}
