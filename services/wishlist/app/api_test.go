package app_test

import (
	"context"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// TestAPIBadInputChangesNothing sends every kind of bad request and checks
// each gets its status and error code, and that none wrote to Redis or the
// changelog.
func TestAPIBadInputChangesNothing(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	c := client{t: t, base: startServe(t, baseConfig(t, kcfg, r.URL()))}
	user := testenv.Unique(t, "u")
	c.putEntry(user, "sku-ok", "us-east-1", "app")

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	cl := newClient(t, kcfg)
	ctx := context.Background()
	keysBefore := rdb.DBSize(ctx).Val()
	logBefore := endOffsets(t, cl, catalog.WishlistChanges)

	entry := "/v1/users/" + user + "/wishlist/sku-1"
	prefs := "/v1/users/" + user + "/preferences"
	good := `{"region":"us-east-1","channels":["app"]}`
	big := `{"region":"us-east-1","channels":["app"],"x":"` + strings.Repeat("a", 70<<10) + `"}`
	tests := []struct {
		name, method, path, tok, ct, body string
		status                            int
		code                              string
	}{
		{"no token", "PUT", entry, "", "application/json", good, 401, "unauthorized"},
		{"wrong token", "PUT", entry, "nope", "application/json", good, 401, "unauthorized"},
		{"wrong token on read", "GET", "/v1/users/" + user + "/wishlist", "nope", "", "", 401, "unauthorized"},
		{"body over limit", "PUT", entry, token, "application/json", big, 413, "too_large"},
		{"malformed JSON", "PUT", entry, token, "application/json", `{"region":`, 400, "bad_request"},
		{"two JSON values", "PUT", entry, token, "application/json", good + good, 400, "bad_request"},
		{"unknown field", "PUT", entry, token, "application/json", `{"region":"us-east-1","channels":["app"],"colour":"red"}`, 400, "bad_request"},
		{"wrong type", "PUT", entry, token, "application/json", `{"region":1,"channels":["app"]}`, 400, "bad_request"},
		{"not JSON content type", "PUT", entry, token, "text/plain", good, 415, "unsupported_media_type"},
		{"unknown region", "PUT", entry, token, "application/json", `{"region":"mars-1","channels":["app"]}`, 422, "invalid"},
		{"malformed region", "PUT", entry, token, "application/json", `{"region":"US EAST","channels":["app"]}`, 422, "invalid"},
		{"bad channel", "PUT", entry, token, "application/json", `{"region":"us-east-1","channels":["pigeon"]}`, 422, "invalid"},
		{"duplicate channel", "PUT", entry, token, "application/json", `{"region":"us-east-1","channels":["app","app"]}`, 422, "invalid"},
		{"no channels and no defaults", "PUT", entry, token, "application/json", `{"region":"us-east-1"}`, 422, "invalid"},
		{"dot in user id", "PUT", "/v1/users/a.b/wishlist/sku-1", token, "application/json", good, 422, "invalid"},
		{"star in user id", "PUT", "/v1/users/a*/wishlist/sku-1", token, "application/json", good, 422, "invalid"},
		{"greater-than in sku", "PUT", "/v1/users/" + user + "/wishlist/s%3E", token, "application/json", good, 422, "invalid"},
		{"space in sku", "PUT", "/v1/users/" + user + "/wishlist/s%201", token, "application/json", good, 422, "invalid"},
		{"pipe in sku", "PUT", "/v1/users/" + user + "/wishlist/s%7C1", token, "application/json", good, 422, "invalid"},
		{"too long id", "PUT", "/v1/users/" + strings.Repeat("u", 129) + "/wishlist/sku-1", token, "application/json", good, 422, "invalid"},
		{"delete bad id", "DELETE", "/v1/users/a.b/wishlist/sku-1", token, "", "", 422, "invalid"},
		{"delete absent", "DELETE", entry, token, "", "", 404, "not_found"},
		{"count unknown region", "GET", "/v1/skus/sku-1/wishlisters?region=mars-1", token, "", "", 422, "invalid"},
		{"count bad sku", "GET", "/v1/skus/s*/wishlisters", token, "", "", 422, "invalid"},
		{"prefs unknown field", "PUT", prefs, token, "application/json", `{"loud":true}`, 400, "bad_request"},
		{"prefs bad locale", "PUT", prefs, token, "application/json", `{"locale":"english please"}`, 422, "invalid"},
		{"prefs bad opt-out", "PUT", prefs, token, "application/json", `{"opt_out":["fax"]}`, 422, "invalid"},
		{"prefs bad contact", "PUT", prefs, token, "application/json", `{"contacts":{"sms":"call me"}}`, 422, "invalid"},
		{"prefs quiet hours without zone", "PUT", prefs, token, "application/json", `{"quiet_hours":{"start":"22:00","end":"07:00"}}`, 422, "invalid"},
		{"prefs bad user", "PUT", "/v1/users/a%20b/preferences", token, "application/json", `{}`, 422, "invalid"},
		{"import wrong content type", "POST", "/v1/wishlists:import", token, "text/csv", "a,b", 415, "unsupported_media_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body struct {
				Error struct{ Code, Message string }
			}
			c.t = t
			status := c.do(tt.method, tt.path, tt.tok, tt.ct, tt.body, &body)
			if status != tt.status || body.Error.Code != tt.code {
				t.Fatalf("got %d %q (%s), want %d %q", status, body.Error.Code, body.Error.Message, tt.status, tt.code)
			}
		})
	}
	// A duplicate key or one in another case is refused naming it, in every
	// body: encoding/json would keep the last duplicate and fold the case
	// ({"unsubscribed":true,"unsubscribed":false} left the user subscribed).
	keyTests := []struct {
		name, path, body, mention string
	}{
		{"entry duplicate region", entry, `{"region":"us-east-1","channels":["app"],"region":"eu-west-1"}`, `duplicate key "region"`},
		{"entry duplicate channels", entry, `{"region":"us-east-1","channels":["app"],"channels":["sms"]}`, `duplicate key "channels"`},
		{"entry key in another case", entry, `{"Region":"us-east-1","channels":["app"]}`, `unknown key "Region" (did you mean "region"?)`},
		{"prefs duplicate unsubscribed", prefs, `{"unsubscribed":true,"unsubscribed":false}`, `duplicate key "unsubscribed"`},
		{"prefs duplicate contact", prefs, `{"contacts":{"sms":"+14155550100","sms":"+14155550101"}}`, `duplicate key "contacts.sms"`},
		{"prefs duplicate nested", prefs, `{"time_zone":"UTC","quiet_hours":{"start":"22:00","end":"07:00","end":"08:00"}}`, `duplicate key "quiet_hours.end"`},
		{"prefs key in another case", prefs, `{"Unsubscribed":true}`, `unknown key "Unsubscribed" (did you mean "unsubscribed"?)`},
	}
	for _, tt := range keyTests {
		t.Run(tt.name, func(t *testing.T) {
			var body struct {
				Error struct{ Code, Message string }
			}
			c.t = t
			status := c.do("PUT", tt.path, token, "application/json", tt.body, &body)
			if status != 400 || body.Error.Code != "bad_request" || !strings.Contains(body.Error.Message, tt.mention) {
				t.Fatalf("got %d %q (%s), want 400 bad_request naming %q", status, body.Error.Code, body.Error.Message, tt.mention)
			}
		})
	}
	t.Run("import lines with duplicate or wrong-case keys", func(t *testing.T) {
		c.t = t
		lines := `{"user_id":"` + user + `","sku":"sku-1","region":"us-east-1","channels":["app"],"sku":"sku-2"}` + "\n" +
			`{"user_id":"` + user + `","SKU":"sku-1","region":"us-east-1","channels":["app"]}` + "\n"
		var res struct {
			Imported, Rejected int64
			Errors             []struct {
				Line   int64
				Reason string
			}
		}
		if code := c.do("POST", "/v1/wishlists:import", token, "application/x-ndjson", lines, &res); code != 200 {
			t.Fatalf("import: %d", code)
		}
		if res.Imported != 0 || res.Rejected != 2 || len(res.Errors) != 2 ||
			!strings.Contains(res.Errors[0].Reason, `duplicate key "sku"`) ||
			!strings.Contains(res.Errors[1].Reason, `unknown key "SKU" (did you mean "sku"?)`) {
			t.Fatalf("import result = %+v", res)
		}
	})
	if got := rdb.DBSize(ctx).Val(); got != keysBefore {
		t.Errorf("redis keys: %d before, %d after the bad requests", keysBefore, got)
	}
	if got := endOffsets(t, cl, catalog.WishlistChanges); got != logBefore {
		t.Errorf("changelog records: %d before, %d after the bad requests", logBefore, got)
	}
}

func TestAPIEntriesPreferencesAndImport(t *testing.T) {
	kcfg := sharedKafka(t)
	r := env.Redis(t)
	c := client{t: t, base: startServe(t, baseConfig(t, kcfg, r.URL()))}
	user := testenv.Unique(t, "u")
	sku := testenv.Unique(t, "sku")

	type item struct {
		UserID, SKU, Region string
		Channels            []string
		Since               time.Time
	}
	var first item
	if code := c.do("PUT", "/v1/users/"+user+"/wishlist/"+sku, token, "application/json", `{"region":"us-east-1","channels":["email","app"]}`, &first); code != 200 {
		t.Fatalf("put: %d", code)
	}
	if !reflect.DeepEqual(first.Channels, []string{"app", "email"}) {
		t.Fatalf("channels not canonical: %v", first.Channels)
	}
	// An update keeps the wishlist time (the user's place in the queue).
	var second item
	c.do("PUT", "/v1/users/"+user+"/wishlist/"+sku, token, "application/json", `{"region":"eu-west-1","channels":["sms"]}`, &second)
	if !second.Since.Equal(first.Since) || second.Region != "eu-west-1" {
		t.Fatalf("update = %+v, first = %+v", second, first)
	}
	var count struct {
		Counts map[string]int64
		Total  int64
	}
	c.do("GET", "/v1/skus/"+sku+"/wishlisters", token, "", "", &count)
	if count.Total != 1 || count.Counts["eu-west-1"] != 1 || count.Counts["us-east-1"] != 0 {
		t.Fatalf("counts after moving region = %+v", count)
	}

	// Default channels come from the preferences.
	prefs := `{"channels":["web"],"locale":"de-DE","time_zone":"Europe/Berlin","quiet_hours":{"start":"22:00","end":"07:00"},"contacts":{"email":"a@example.com"},"opt_out":["sms"]}`
	if code := c.do("PUT", "/v1/users/"+user+"/preferences", token, "application/json", prefs, nil); code != 200 {
		t.Fatalf("put preferences: %d", code)
	}
	var got struct {
		Preferences map[string]any
	}
	c.do("GET", "/v1/users/"+user+"/preferences", token, "", "", &got)
	if got.Preferences["locale"] != "de-DE" || got.Preferences["time_zone"] != "Europe/Berlin" {
		t.Fatalf("preferences = %+v", got)
	}
	var third item
	if code := c.do("PUT", "/v1/users/"+user+"/wishlist/"+sku+"-2", token, "application/json", `{"region":"ap-south-1"}`, &third); code != 200 || !reflect.DeepEqual(third.Channels, []string{"web"}) {
		t.Fatalf("put with default channels: %d %+v", code, third)
	}
	var list struct{ Items []item }
	c.do("GET", "/v1/users/"+user+"/wishlist", token, "", "", &list)
	if len(list.Items) != 2 || list.Items[0].SKU != sku || list.Items[1].SKU != sku+"-2" {
		t.Fatalf("list = %+v", list)
	}
	if code := c.do("DELETE", "/v1/users/"+user+"/wishlist/"+sku, token, "", "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code := c.do("DELETE", "/v1/users/"+user+"/wishlist/"+sku, token, "", "", nil); code != 404 {
		t.Fatalf("second delete: %d", code)
	}
	var one struct{ Count int64 }
	c.do("GET", "/v1/skus/"+sku+"/wishlisters?region="+url.QueryEscape("eu-west-1"), token, "", "", &one)
	if one.Count != 0 {
		t.Fatalf("count after delete = %d", one.Count)
	}

	// Bulk import: good lines in, bad lines reported by line number.
	isku := testenv.Unique(t, "isku")
	var nd strings.Builder
	for i := range 25 {
		nd.WriteString(`{"user_id":"` + user + "-" + string(rune('a'+i)) + `","sku":"` + isku + `","region":"us-east-1","channels":["app"]}` + "\n")
	}
	nd.WriteString(`{"user_id":"bad.id","sku":"` + isku + `","region":"us-east-1","channels":["app"]}` + "\n")
	nd.WriteString("\n{not json\n")
	var res struct {
		Imported, Rejected int64
		Errors             []struct {
			Line   int64
			Reason string
		}
	}
	if code := c.do("POST", "/v1/wishlists:import", token, "application/x-ndjson", nd.String(), &res); code != 200 {
		t.Fatalf("import: %d", code)
	}
	if res.Imported != 25 || res.Rejected != 2 || len(res.Errors) != 2 || res.Errors[0].Line != 26 || res.Errors[1].Line != 28 {
		t.Fatalf("import result = %+v", res)
	}
	c.do("GET", "/v1/skus/"+isku+"/wishlisters?region=us-east-1", token, "", "", &one)
	if one.Count != 25 {
		t.Fatalf("count after import = %d", one.Count)
	}
}
