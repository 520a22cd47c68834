package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"backinstock/shared/testenv"
)

// The tests run devstack as a child process: the test binary re-executes
// itself with this variable set and runs main, which is the devstack binary
// without a separate go build.
const runMain = "DEVSTACK_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type devstack struct {
	cmd            *exec.Cmd
	dir            string
	redisPort      int
	stdout, stderr *syncBuf
	exited         chan struct{}
}

// start runs devstack on free ports (--infra-only unless full), in its own
// process group as a terminal would run it, with extra flags appended.
func start(t *testing.T, full bool, extra ...string) *devstack {
	t.Helper()
	ports := make([]int, 8)
	for i := range ports {
		p, err := testenv.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = p
	}
	d := &devstack{dir: t.TempDir(), redisPort: ports[5], stdout: &syncBuf{}, stderr: &syncBuf{}, exited: make(chan struct{})}
	args := []string{"--data-dir", d.dir,
		"--kafka-ports", strconv.Itoa(ports[0]) + "," + strconv.Itoa(ports[1]) + "," + strconv.Itoa(ports[2]),
		"--nats-port", strconv.Itoa(ports[3]), "--nats-ws-port", strconv.Itoa(ports[4]),
		"--redis-port", strconv.Itoa(ports[5]),
		"--mailpit-smtp-port", strconv.Itoa(ports[6]), "--mailpit-port", strconv.Itoa(ports[7])}
	if full {
		args = append(args, "--http-port-base", strconv.Itoa(testenv.FreePortRange(t, 40)))
	} else {
		args = append(args, "--infra-only")
	}
	args = append(args, extra...)
	d.cmd = exec.Command(os.Args[0], args...)
	d.cmd.Env = append(os.Environ(), runMain+"=1")
	d.cmd.Stdout, d.cmd.Stderr = d.stdout, d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		_ = d.cmd.Process.Kill()
		<-d.exited
	})
	return d
}

// waitUp waits for devstack.env, written once everything answers. The bound
// is above devstack's own (90 s for the services' /readyz, after the
// infrastructure): under make test's load a full stack built with -race
// once took over 60 s, and when devstack gives up it exits naming what was
// not ready, which is what the test should report.
func (d *devstack) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(150 * time.Second)
	for {
		select {
		case <-d.exited:
			t.Fatalf("devstack exited: %v\nstderr:\n%s", d.cmd.ProcessState, d.stderr)
		default:
		}
		if _, err := os.Stat(filepath.Join(d.dir, "devstack.env")); err == nil {
			return
		}
		if time.Now().After(deadline) {
			s := d.stderr.String()
			if len(s) > 4000 {
				s = s[len(s)-4000:]
			}
			t.Fatalf("devstack.env not written within 150 s; stderr (tail):\n%s", s)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func answers(port int) bool {
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestPortInUseExitsNonZeroNamingTheFlag(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	// The later --redis-port wins over the free one start picks.
	d := start(t, false, "--redis-port", strconv.Itoa(port))
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("devstack did not exit")
	}
	if d.cmd.ProcessState.ExitCode() == 0 {
		t.Fatalf("exit code 0; stderr:\n%s", d.stderr)
	}
	if s := d.stderr.String(); !strings.Contains(s, "--redis-port") || !strings.Contains(s, strconv.Itoa(port)) {
		t.Fatalf("stderr does not name --redis-port and %d:\n%s", port, s)
	}
}

func TestSIGKILLLeavesNoRedisServer(t *testing.T) {
	d := start(t, false)
	d.waitUp(t)
	if !answers(d.redisPort) {
		t.Fatal("redis not answering while the stack runs")
	}
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	testenv.Eventually(t, 5*time.Second, func() bool { return !answers(d.redisPort) }, "redis-server gone with devstack")
}

// The whole stack, services included: they drain against a live Redis.
func TestCtrlCStopsQuicklyWithJSONLogsOnly(t *testing.T) {
	d := start(t, true)
	d.waitUp(t)
	env, err := os.ReadFile(filepath.Join(d.dir, "devstack.env"))
	if err != nil {
		t.Fatal(err)
	}
	// A terminal's Ctrl-C goes to the whole foreground process group.
	began := time.Now()
	if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.exited:
	case <-time.After(stopBound + 5*time.Second):
		t.Fatal("devstack did not stop")
	}
	took := time.Since(began)
	if took > stopBound {
		t.Errorf("stopping took %s, want under %s", took, stopBound)
	}
	t.Logf("Ctrl-C to exit: %s", took)
	if code := d.cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d", code)
	}
	if answers(d.redisPort) {
		t.Error("redis-server still answers after devstack stopped")
	}
	// stderr is zap's alone; stdout is zap's plus the env devstack prints
	// on purpose (the devstack.env lines and its # notes).
	envLines := map[string]bool{}
	for _, l := range strings.Split(string(env), "\n") {
		envLines[l] = true
	}
	check := func(name, out string, allowEnv bool) {
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			line := sc.Text()
			if json.Valid([]byte(line)) || allowEnv && (envLines[line] || strings.HasPrefix(line, "# ")) {
				continue
			}
			t.Errorf("%s line is not JSON: %q", name, line)
		}
	}
	check("stderr", d.stderr.String(), false)
	// The group's SIGINT must not reach redis-server: it stops after the services.
	if strings.Contains(d.stderr.String(), "redis-server exited") {
		t.Errorf("redis-server died before the stack stopped it:\n%s", d.stderr)
	}
	check("stdout", d.stdout.String(), true)
}
