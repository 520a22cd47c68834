package edge_test

import (
	"strings"
	"testing"

	"backinstock/topics/edge"
)

func TestStreamName(t *testing.T) {
	cases := []struct{ region, channel, want string }{
		{"us-east-1", "app", "EDGE_US_EAST_1_APP"},
		{"eu-west-1", "email", "EDGE_EU_WEST_1_EMAIL"},
		{"bare", "sms", "EDGE_BARE_SMS"},
		{"r1", "web", "EDGE_R1_WEB"},
	}
	for _, c := range cases {
		if got := edge.StreamName(c.region, c.channel); got != c.want {
			t.Errorf("StreamName(%q, %q) = %q, want %q", c.region, c.channel, got, c.want)
		}
	}
	if got, want := edge.LegacyStreamName("us-east-1"), "EDGE_US_EAST_1"; got != want {
		t.Errorf("LegacyStreamName = %q, want %q", got, want)
	}
	if got, want := strings.Join(edge.Streams("r1"), " "), "EDGE_R1_APP EDGE_R1_WEB EDGE_R1_EMAIL EDGE_R1_SMS"; got != want {
		t.Errorf("Streams(r1) = %q, want %q", got, want)
	}
}

func TestNames(t *testing.T) {
	cases := []struct{ name, got, want string }{
		{"subject", edge.Subject("us-east-1", "app", "alice"), "edge.us-east-1.app.alice"},
		{"region filter", edge.RegionFilter("us-east-1"), "edge.us-east-1.>"},
		{"channel filter", edge.ChannelFilter("us-east-1", "sms"), "edge.us-east-1.sms.>"},
		{"user filter", edge.UserFilter("alice"), "edge.*.*.alice"},
		{"gateway consumer", edge.GatewayConsumer("email"), "gateway-email"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
}

func TestParseSubject(t *testing.T) {
	cases := []struct {
		subject                 string
		region, channel, userID string
		err                     string // "" for success, else a substring of the error
	}{
		{"edge.us-east-1.app.alice", "us-east-1", "app", "alice", ""},
		{"edge.r1.sms.user_1-A", "r1", "sms", "user_1-A", ""},
		{"edge.us-east-1.app", "", "", "", "want edge.<region>.<channel>.<user_id>"},
		{"edge.us-east-1.app.alice.x", "", "", "", "want edge.<region>.<channel>.<user_id>"},
		{"notify.us-east-1.app.alice", "", "", "", "want edge.<region>.<channel>.<user_id>"},
		{"EDGE.us-east-1.app.alice", "", "", "", "want edge.<region>.<channel>.<user_id>"},
		{"", "", "", "", "want edge.<region>.<channel>.<user_id>"},
		{"edge.US-EAST-1.app.alice", "", "", "", "region must match"},
		{"edge.-r.app.alice", "", "", "", "region must match"},
		{"edge.*.app.alice", "", "", "", "region must match"},
		{"edge..app.alice", "", "", "", "region must match"},
		{"edge.r1.fax.alice", "", "", "", "channel must be one of app, web, email, sms"},
		{"edge.r1.*.alice", "", "", "", "channel must be one of"},
		{"edge.r1.app.*", "", "", "", "user id must match"},
		{"edge.r1.app.>", "", "", "", "user id must match"},
		{"edge.r1.app.", "", "", "", "user id must match"},
		{"edge.r1.app.al ice", "", "", "", "user id must match"},
	}
	for _, c := range cases {
		t.Run(c.subject, func(t *testing.T) {
			region, channel, userID, err := edge.ParseSubject(c.subject)
			if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
				t.Fatalf("ParseSubject(%q) error %v, want %q", c.subject, err, c.err)
			}
			if region != c.region || channel != c.channel || userID != c.userID {
				t.Errorf("ParseSubject(%q) = %q, %q, %q, want %q, %q, %q", c.subject, region, channel, userID, c.region, c.channel, c.userID)
			}
		})
	}
}

// TestFilters checks each filter against the subjects it must and must not
// match, with NATS's matching rules ('*' one token, '>' one or more).
func TestFilters(t *testing.T) {
	alice := edge.Subject("us-east-1", "sms", "alice")
	cases := []struct {
		name    string
		filter  string
		subject string
		match   bool
	}{
		{"region holds its subjects", edge.RegionFilter("us-east-1"), alice, true},
		{"region holds no other region's", edge.RegionFilter("eu-west-1"), alice, false},
		{"region is not a prefix match", edge.RegionFilter("us-east"), alice, false},
		{"channel reads its channel", edge.ChannelFilter("us-east-1", "sms"), alice, true},
		{"channel skips other channels", edge.ChannelFilter("us-east-1", "app"), alice, false},
		{"channel skips other regions", edge.ChannelFilter("eu-west-1", "sms"), alice, false},
		{"user reads own in any region", edge.UserFilter("alice"), edge.Subject("ap-south-1", "app", "alice"), true},
		{"user reads own", edge.UserFilter("alice"), alice, true},
		{"user skips others", edge.UserFilter("alice"), edge.Subject("us-east-1", "sms", "bob"), false},
		{"user is not a prefix match", edge.UserFilter("ali"), alice, false},
	}
	for _, c := range cases {
		if got := matches(c.filter, c.subject); got != c.match {
			t.Errorf("%s: %q matches %q = %v, want %v", c.name, c.filter, c.subject, got, c.match)
		}
	}
}

// FuzzSubject: Subject and ParseSubject are inverses. Valid parts survive
// the round trip, invalid ones are refused, and any string ParseSubject
// accepts is rebuilt exactly. The seed corpus runs in plain go test.
func FuzzSubject(f *testing.F) {
	f.Add("us-east-1", "app", "alice")
	f.Add("r1", "sms", "u_1-x")
	f.Add("US-EAST-1", "app", "alice")
	f.Add("r1", "fax", "alice")
	f.Add("r1", "app", "a.b")
	f.Add("r1.app", "alice", "")
	f.Add("edge.r1.app.alice", "*", ">")
	f.Fuzz(func(t *testing.T, region, channel, userID string) {
		s := edge.Subject(region, channel, userID)
		r, c, u, err := edge.ParseSubject(s)
		if err == nil && (r != region || c != channel || u != userID) {
			t.Fatalf("ParseSubject(Subject(%q, %q, %q)) = %q, %q, %q", region, channel, userID, r, c, u)
		}
		if valid := validParts(region, channel, userID); valid != (err == nil) {
			t.Fatalf("ParseSubject(%q) error %v, parts valid %v", s, err, valid)
		}
		// Any string read as a subject: accepted only if it is rebuilt exactly.
		for _, in := range []string{region, channel, userID} {
			if r, c, u, err := edge.ParseSubject(in); err == nil && edge.Subject(r, c, u) != in {
				t.Fatalf("ParseSubject(%q) = %q, %q, %q, which builds %q", in, r, c, u, edge.Subject(r, c, u))
			}
		}
	})
}
