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
		{userdata.LegacyNotifierSentKey("us-east-1", "alice", "n1"), userdata.Key{Service: "notifier", Kind: "sent", Region: "us-east-1", UserID: "alice", NotificationID: "n1"}},
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
		userdata.NotifierSentSetKey("us-east-1", "sku1", 3, "email", 5),
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
		userdata.GatewayDeliveredKey("us-east-1", "alice", "n1"):                                   "alice",
		userdata.GatewayDevicesKey("ap-south-1", "alice", "n3"):                                    "alice",
		userdata.GatewayDevicesKey("us-east-1", "xalice", "n1"):                                    "xalice",
		userdata.GatewayDeliveredKey("us-east-1", "alicex", "n"):                                   "alicex",
		userdata.GatewayDeliveredKey("us-east-1", "ali", "n1"):                                     "ali",
		userdata.LegacyNotifierSentKey("eu-west-1", "alice", "n2"):                                 "alice",
		userdata.LegacyNotifierSentKey("eu-west-1", "alic", "n2"):                                  "alic",
		userdata.NotifierSentSetKey("us-east-1", "alice", 1, "email", userdata.SentShard("alice")): "",
		userdata.NotifierHeldDataKey("us-east-1"):                                                  "",
		"gwy:{us-east-1}:ratelimit:alice":                                                          "",
	}
	for _, user := range []string{"alice", "xalice", "alicex", "ali", "alic"} {
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

func TestSentSetKeysParseBack(t *testing.T) {
	want := userdata.SentSet{Region: "eu-west-1", SKU: "sku_1-A", Episode: 42, Channel: "email", Shard: 15}
	key := userdata.NotifierSentSetKey(want.Region, want.SKU, want.Episode, want.Channel, want.Shard)
	if got, ok := userdata.ParseSentSetKey(key); !ok || got != want {
		t.Fatalf("ParseSentSetKey(%q) = %+v, %v; want %+v", key, got, ok, want)
	}
	for _, bad := range []string{
		"ntf:{eu-west-1|sku|42|16}:sent:email", // shard out of range
		"ntf:{eu-west-1|sku|x|1}:sent:email",
		"ntf:{eu-west-1|sku|42}:sent:email",
		"ntf:{eu-west-1|sku|42|1}:sent:",
		"ntf:{eu-west-1|sku|042|1}:sent:email", // not canonical
		"ntf:{eu-west-1|sku|+42|1}:sent:email",
		"ntf:{eu-west-1|sku|42|01}:sent:email",
		"ntf:{eu-west-1|sku|0|1}:sent:email",   // episodes start at 1
		"ntf:{eu-west-1|sku|42|1}:sent:fax",    // not a channel
		"ntf:{eu-west-1|sk:u|42|1}:sent:email", // not an id
		"ntf:{EU|sku|42|1}:sent:email",         // not a region
		"ntf:{|sku|42|1}:sent:email",
		"ntf:{eu-west-1|alice}:sent:n1",
		userdata.NotifierHeldKey("eu-west-1"),
		userdata.GatewayDeliveredKey("eu-west-1", "alice", "n1"),
	} {
		if s, ok := userdata.ParseSentSetKey(bad); ok {
			t.Errorf("ParseSentSetKey(%q) = %+v, want not ok", bad, s)
		}
	}
}

// TestUserSentSetPattern: a user's pattern matches the sent sets of its
// shard in any region and episode, and no set of another shard.
func TestUserSentSetPattern(t *testing.T) {
	seen := map[int]bool{}
	for i := range 200 {
		user := "u" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		shard := userdata.SentShard(user)
		if shard < 0 || shard >= userdata.SentShards {
			t.Fatalf("SentShard(%q) = %d", user, shard)
		}
		seen[shard] = true
		p := userdata.UserSentSetPattern(user)
		for s := range userdata.SentShards {
			key := userdata.NotifierSentSetKey("ap-south-1", "sku-9", 12, "sms", s)
			if m, err := path.Match(p, key); err != nil || m != (s == shard) {
				t.Fatalf("pattern %q of %q matches %q: %v, %v (shard %d)", p, user, key, m, err, shard)
			}
		}
	}
	if len(seen) != userdata.SentShards {
		t.Fatalf("200 users fell in %d of %d shards", len(seen), userdata.SentShards)
	}
}
