package redisconn_test

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"backinstock/shared/redisconn"
	"backinstock/shared/testenv"
)

func TestConnectWithPasswordAndRejectWrongOne(t *testing.T) {
	r, err := testenv.StartRedis(testenv.RedisOptions{Dir: t.TempDir(), Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	c, err := redisconn.New(ctx, r.URL(), redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	c.Close()

	_, err = redisconn.New(ctx, "redis://:wrong@"+r.Addr+"/0", redisconn.Options{})
	if err == nil || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("got %v, want an error that does not leak the password", err)
	}
}

func TestParseRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"http://localhost:6379", "localhost:6379", "redis://host:notaport"} {
		if _, err := redisconn.Parse(u, redisconn.Options{}); err == nil || !strings.Contains(err.Error(), "REDIS_URL") {
			t.Errorf("%s: got %v, want an error naming REDIS_URL", u, err)
		}
	}
}

func TestClusterURLSelectsClusterClient(t *testing.T) {
	c, err := redisconn.Parse("redis://user:pw@127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002", redisconn.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		t.Fatalf("client %T, want *redis.ClusterClient", c)
	}
	if o := cc.Options(); len(o.Addrs) != 3 || o.Username != "user" || o.Password != "pw" {
		t.Fatalf("cluster options %+v", o)
	}
}
