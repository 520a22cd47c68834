package app_test

import (
	"context"
	"fmt"
	"reflect"
	"testing"

	"github.com/redis/go-redis/v9"

	"backinstock/services/wishlist/app"
	"backinstock/services/wishlist/internal/store"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
	"backinstock/topics/events"
)

// TestRebuildReproducesStore makes adds, updates (channels and region),
// removes and preference changes through the API, snapshots the store,
// flushes Redis, rebuilds from wishlist.changes.v1 and expects the very same
// store: entries, wishlist times (sorted-set scores), counts, preferences;
// preferences records the contract rejects are counted as bad and skipped.
func TestRebuildReproducesStore(t *testing.T) {
	kcfg := sharedKafka(t)
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	cfg := baseConfig(t, kcfg, r.URL())
	c := client{t: t, base: startServe(t, cfg)}

	users := []string{testenv.Unique(t, "u"), testenv.Unique(t, "u"), testenv.Unique(t, "u")}
	skus := []string{testenv.Unique(t, "s"), testenv.Unique(t, "s")}
	for i, u := range users {
		for j, s := range skus {
			c.putEntry(u, s, cfg.Regions[(i+j)%3], "app", "email")
		}
	}
	c.putEntry(users[0], skus[0], "ap-south-1", "sms")                // region and channels change
	c.putEntry(users[1], skus[1], cfg.Regions[(1+1)%3], "web", "app") // channels change
	if code := c.do("DELETE", "/v1/users/"+users[2]+"/wishlist/"+skus[0], token, "", "", nil); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	c.do("PUT", "/v1/users/"+users[0]+"/preferences", token, "application/json", `{"locale":"en-GB","opt_out":["email"],"contacts":{"email":"x@example.com"}}`, nil)
	c.do("PUT", "/v1/users/"+users[1]+"/preferences", token, "application/json", `{"unsubscribed":true}`, nil)
	c.do("PUT", "/v1/users/"+users[1]+"/preferences", token, "application/json", `{"unsubscribed":false,"channels":["app"]}`, nil)
	// Devices travel in the preferences record; a removal is a new record.
	c.putDevice(users[1], "phone", `{"kind":"fcm","token":"tok-1"}`)
	c.putDevice(users[2], "laptop", `{"kind":"webpush","endpoint":"https://push.example/send/1","p256dh":"`+pushKey+`","auth":"`+pushAuth+`"}`)
	c.putDevice(users[2], "phone", `{"kind":"fcm","token":"tok-2"}`)
	if code := c.do("DELETE", "/v1/users/"+users[2]+"/devices/phone", token, "", "", nil); code != 204 {
		t.Fatalf("delete device: %d", code)
	}

	// Preferences records the contract rejects, for a user whose valid
	// preferences they would otherwise replace: the rebuild must skip and
	// count them.
	badPrefs := []string{
		`{"user_id":"` + users[0] + `","preferences":{"locale":"en-GB","theme":"dark"},"at":"2026-01-02T03:04:05Z"}`, // unknown field
		`{"user_id":"` + users[0] + `","preferences":{"locale":"english"},"at":"2026-01-02T03:04:05Z"}`,              // bad locale
		`{"user_id":"` + users[0] + `","preferences":null,"at":"2026-01-02T03:04:05Z"}`,                              // null instead of absent
		`{"user_id":"` + users[1] + `","at":"2026-01-02T03:04:05Z"}`,                                                 // another user's value
		`{"user_id":"` + users[0] + `","preferences":{}}`,                                                            // no at
	}
	for _, v := range badPrefs {
		produce(t, kcfg, catalog.WishlistChanges, events.PreferencesKey(users[0]), []byte(v))
	}

	rdb := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer rdb.Close()
	snapshot := func() map[string]any {
		ctx := context.Background()
		out := map[string]any{}
		for _, u := range users {
			out["hash "+u] = rdb.HGetAll(ctx, store.UserKey(u)).Val()
			var list, prefs any
			c.do("GET", "/v1/users/"+u+"/wishlist", token, "", "", &list)
			c.do("GET", "/v1/users/"+u+"/preferences", token, "", "", &prefs)
			out["list "+u], out["prefs "+u] = list, prefs
			out["devices "+u] = c.devices(u)
		}
		for _, s := range skus {
			var counts any
			c.do("GET", "/v1/skus/"+s+"/wishlisters", token, "", "", &counts)
			out["counts "+s] = counts
			for _, reg := range cfg.Regions {
				out[fmt.Sprint("zset ", s, reg)] = rdb.ZRangeWithScores(ctx, store.UsersKey(s, reg), 0, -1).Val()
				out[fmt.Sprint("items ", s, reg)] = rdb.HGetAll(ctx, store.ItemsKey(s, reg)).Val()
			}
		}
		return out
	}
	before := snapshot()
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := rdb.DBSize(context.Background()).Val(); n != 0 {
		t.Fatalf("flush left %d keys", n)
	}
	res, err := app.RunRebuild(context.Background(), cfg, testLogger(t))
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	if res.Records < 12+int64(len(badPrefs)) || res.Bad != int64(len(badPrefs)) {
		t.Fatalf("rebuild result = %+v", res)
	}
	after := snapshot()
	for k, v := range before {
		if !reflect.DeepEqual(after[k], v) {
			t.Errorf("%s differs after rebuild:\nbefore %v\nafter  %v", k, v, after[k])
		}
	}
}
