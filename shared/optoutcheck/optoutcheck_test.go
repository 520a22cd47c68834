package optoutcheck_test

import (
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/optoutcheck"
	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
	"backinstock/topics/optout"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func TestStatesReadsEachUsersRecord(t *testing.T) {
	ctx := context.Background()
	rdb, err := redisconn.New(ctx, env.Redis(t).URL(), redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	p := testenv.Unique(t, "u")
	gone, emailOnly, broken, plain := p+"-gone", p+"-email", p+"-broken", p+"-plain"
	for k, v := range map[string]string{gone: "all", emailOnly: "email", broken: "email,fax"} {
		if err := rdb.Set(ctx, optout.Key(k), v, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	r := optoutcheck.New(rdb)
	// A user named twice is read once; a user without a record is absent.
	got, err := r.States(ctx, []string{gone, emailOnly, broken, plain, gone})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("States = %+v, want 3 users", got)
	}
	for _, tc := range []struct {
		user, channel, reason string
	}{
		{gone, "app", optout.ReasonUnsubscribed},
		{emailOnly, "email", optout.ReasonOptedOut},
		{emailOnly, "sms", ""},
		{broken, "sms", optout.ReasonUnreadable},
		{plain, "email", ""},
	} {
		reason, _ := got[tc.user].Suppresses(tc.channel)
		if reason != tc.reason {
			t.Errorf("%s on %s: reason %q, want %q", tc.user, tc.channel, reason, tc.reason)
		}
	}
	one, err := r.State(ctx, emailOnly)
	if err != nil || len(one.Channels) != 1 || one.Channels[0] != "email" {
		t.Fatalf("State(%s) = %+v, %v", emailOnly, one, err)
	}
	if none, err := r.State(ctx, plain); err != nil || !none.None() {
		t.Fatalf("State(%s) = %+v, %v, want none", plain, none, err)
	}
}

func TestStatesFailsWhenRedisIsAway(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	rdb, err := redisconn.Parse(env.Redis(t).URL(), redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	cancel()
	if _, err := optoutcheck.New(rdb).States(ctx, []string{"a"}); err == nil {
		t.Fatal("a lookup that reached no Redis reported no error: the caller would send")
	}
}

// TestStatesPathsAgree: the single-node MGET read (over several chunks) and
// the per-key GET pipeline a sharded client gets find the same records.
func TestStatesPathsAgree(t *testing.T) {
	ctx := context.Background()
	single, ring := env.Redis(t).SingleAndSharded(t)
	p := testenv.Unique(t, "u")
	users := make([]string, 2500)
	for i := range users {
		users[i] = p + "-" + strconv.Itoa(i)
		if i%7 == 0 {
			if err := single.Set(ctx, optout.Key(users[i]), "sms", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	for name, rdb := range map[string]redis.UniversalClient{"mget": single, "get": ring} {
		got, err := optoutcheck.New(rdb).States(ctx, append(users, users[:10]...))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(got) != (len(users)+6)/7 {
			t.Fatalf("%s: %d users with a record, want %d", name, len(got), (len(users)+6)/7)
		}
		for i, u := range users {
			if reason, _ := got[u].Suppresses("sms"); (reason != "") != (i%7 == 0) {
				t.Fatalf("%s: user %d on sms: reason %q", name, i, reason)
			}
		}
	}
}
