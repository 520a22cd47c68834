package providertest

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"backinstock/shared/testenv"
)

// serveLocal serves h on a free 127.0.0.1 port until the test ends and
// returns its base URL.
func serveLocal(tb testing.TB, h http.Handler) string {
	tb.Helper()
	port, err := testenv.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + ln.Addr().String()
}

// MaxInWindow is the most of the times ts (in order) that fall within any
// window of length w ending at one of them: what a provider counting over
// sliding windows at arrival sees, for checking a rate limit at its side.
func MaxInWindow(ts []time.Time, w time.Duration) int {
	most, lo := 0, 0
	for hi := range ts {
		for ts[hi].Sub(ts[lo]) >= w {
			lo++
		}
		most = max(most, hi-lo+1)
	}
	return most
}
