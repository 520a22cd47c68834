package main_test

// These tests run the real binary: its --help and exit codes, and a start
// and a SIGTERM against real servers.

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"backinstock/shared/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

const keys = "CLICK_KEYS=k1:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// TestBinary builds the binary once (a build is most of the time) for
// both checks.
func TestBinary(t *testing.T) {
	bin := testenv.BuildBinary(t, ".")
	t.Run("help and exit codes", func(t *testing.T) { helpAndExitCodes(t, bin) })
	t.Run("runs and stops on SIGTERM", func(t *testing.T) { runsAndStopsOnSIGTERM(t, bin) })
}

func helpAndExitCodes(t *testing.T, bin string) {
	cases := []struct {
		args []string
		env  []string
		code int
		want string
	}{
		{[]string{"--help"}, nil, 0, "run       serve the tracked links"},
		{[]string{"--help"}, nil, 0, "rebuild   wipe the report aggregates"},
		{[]string{"rebuild", "--help"}, nil, 0, "(env REPORTS_MARKER_TTL)"},
		{[]string{"rebuild", "--reports-retention", "1h"}, nil, 2, "REPORTS_RETENTION: must be at least 24h"},
		{[]string{"rebuild", "--reports-group", "a group"}, nil, 2, "REPORTS_GROUP:"},
		{[]string{"run", "--help"}, nil, 0, "(env CLICK_KEYS)"},
		{nil, nil, 2, "usage: engagement <command>"},
		{[]string{"serve"}, nil, 2, `unknown command "serve"`},
		{[]string{"run"}, []string{keys}, 2, "API_TOKEN: required"},
		{[]string{"run", "--api-token", "t"}, nil, 2, "CLICK_KEYS: required"},
		{[]string{"run", "--api-token", "t", "--click-keys", "k1:short"}, nil, 2, "CLICK_KEYS: key 1 (k1): secret must be at least 32 bytes"},
	}
	for _, c := range cases {
		code, out := testenv.RunBinary(t, bin, c.args, c.env)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("engagement %v: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, out)
		}
	}
}

// runsAndStopsOnSIGTERM: the binary becomes ready against real Redis
// and Kafka and exits 0 on SIGTERM.
func runsAndStopsOnSIGTERM(t *testing.T, bin string) {
	port, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(bin, "run")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), keys, "API_TOKEN=t", "HTTP_ADDR=" + addr,
		"KAFKA_BROKERS=" + env.Kafka(t).BrokerList(), "REDIS_URL=" + env.Redis(t).URL()}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	testenv.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "not ready:\n%s", &out)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, &out)
	}
}
