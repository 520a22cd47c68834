package userdata_test

import (
	"path"
	"testing"

	"backinstock/topics/userdata"
)

func TestKeysParseBack(t *testing.T) {
	cases := []struct {
		key  string
		want userdata.Key
	}{
		{userdata.NotifierSentKey("us-east-1", "alice", "n1"), userdata.Key{Service: "notifier", Kind: "sent", Region: "us-east-1", UserID: "alice", NotificationID: "n1"}},
		{userdata.GatewayDeliveredKey("eu-west-1", "al_ice-2", "n2"), userdata.Key{Service: "gateway", Kind: "delivered", Region: "eu-west-1", UserID: "al_ice-2", NotificationID: "n2"}},
		{userdata.GatewayDevicesKey("r1", "bob", "n3"), userdata.Key{Service: "gateway", Kind: "devices", Region: "r1", UserID: "bob", NotificationID: "n3"}},
	}
	for _, c := range cases {
		got, ok := userdata.ParseKey(c.key)
		if !ok || got != c.want {
			t.Errorf("ParseKey(%q) = %+v, %v; want %+v", c.key, got, ok, c.want)
		}
	}
}

func TestParseKeyRefusesOthers(t *testing.T) {
	for _, key := range []string{
		userdata.NotifierHeldKey("us-east-1"),
		userdata.NotifierHeldDataKey("us-east-1"),
		"gwy:{us-east-1}:ratelimit:twilio",
		"ntf:{us-east-1|alice}:delivered:n1", // a gateway kind under the notifier
		"gwy:{us-east-1|alice}:sent:n1",
		"ntf:{us-east-1|alice}:sent:",
		"ntf:{|alice}:sent:n1",
		"ntf:{us-east-1|}:sent:n1",
		"wl:{alice}:user",
		"",
	} {
		if k, ok := userdata.ParseKey(key); ok {
			t.Errorf("ParseKey(%q) = %+v, want not ok", key, k)
		}
	}
}

// TestUserPatterns: Redis's MATCH is a glob like path.Match for these
// patterns (no '/' in keys); each user's keys match their own patterns only.
func TestUserPatterns(t *testing.T) {
	keys := map[string]string{
		userdata.NotifierSentKey("us-east-1", "alice", "n1"):     "alice",
		userdata.NotifierSentKey("eu-west-1", "alice", "n2"):     "alice",
		userdata.GatewayDeliveredKey("us-east-1", "alice", "n1"): "alice",
		userdata.GatewayDevicesKey("ap-south-1", "alice", "n3"):  "alice",
		userdata.NotifierSentKey("us-east-1", "xalice", "n1"):    "xalice",
		userdata.GatewayDeliveredKey("us-east-1", "alicex", "n"): "alicex",
		userdata.NotifierSentKey("us-east-1", "ali", "n1"):       "ali",
		userdata.NotifierHeldDataKey("us-east-1"):                "",
		"gwy:{us-east-1}:ratelimit:alice":                        "",
	}
	for _, user := range []string{"alice", "xalice", "alicex", "ali"} {
		for key, owner := range keys {
			matched := false
			for _, p := range userdata.UserPatterns(user) {
				m, err := path.Match(p, key)
				if err != nil {
					t.Fatal(err)
				}
				matched = matched || m
			}
			if matched != (owner == user) {
				t.Errorf("patterns of %q match %q: %v (owner %q)", user, key, matched, owner)
			}
		}
	}
}
