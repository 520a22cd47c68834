package e2eenv

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"backinstock/services/notifier/edgeauth"
)

// gatewayPkg is the gateway's main package.
const gatewayPkg = "backinstock/services/gateway/cmd/gateway"

// crashGateway is the file name of the gateway built with the test-only
// crash hook (-tags crashhook), which the production build the stack runs
// (Build) lacks.
const crashGateway = "gateway-crashhook"

// CrashGatewayBinary returns a gateway built with -tags crashhook: BinDir's
// gateway-crashhook when it has one (E2E_BIN_DIR), else one built there on
// first use.
func (s *Stack) CrashGatewayBinary(ctx context.Context) (string, error) {
	bin := filepath.Join(s.BinDir, crashGateway)
	if _, err := os.Stat(bin); err != nil {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, "go", "build", "-tags", "crashhook", "-o", bin, gatewayPkg)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build -tags crashhook %s: %w\n%s", gatewayPkg, err, out)
		}
		s.logf("built the gateway with -tags crashhook in %s", time.Since(t0).Round(time.Millisecond))
	}
	help, _ := exec.CommandContext(ctx, bin, "run", "--help").CombinedOutput()
	if !strings.Contains(string(help), "GATEWAY_CRASH_AT") {
		return "", fmt.Errorf("%s has no crash hook: build it with -tags crashhook", bin)
	}
	return bin, nil
}

// NewCrashGateway prepares (does not start) process name, a `gateway run`
// for region from CrashGatewayBinary, connecting as the gateway's own NATS
// user (gateway.creds, as deployed) rather than the notifier's; env is
// added last and overrides the defaults. Unlike StartGateway, a region may
// have several, and the caller starts, kills and restarts them.
func (s *Stack) NewCrashGateway(ctx context.Context, name, region string, env ...string) (*Proc, error) {
	bin, err := s.CrashGatewayBinary(ctx)
	if err != nil {
		return nil, err
	}
	env = append([]string{"NATS_CREDS=" + filepath.Join(s.EdgeDir, edgeauth.FileGatewayCreds), "REGION=" + region}, env...)
	p, err := s.newProc("gateway-"+region, name, []string{"gateway", "run"}, "HTTP_ADDR", env...)
	if err != nil {
		return nil, err
	}
	p.Bin = bin
	return p, nil
}

// Metric sums the samples of one metric (every label set) on the
// process's /metrics.
func (p *Proc) Metric(ctx context.Context, name string) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s /metrics: %w", p.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s /metrics: %s", p.Name, resp.Status)
	}
	return sumSeries(resp.Body, name)
}

func sumSeries(r io.Reader, name string) (float64, error) {
	var sum float64
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("metric line %q: %w", line, err)
		}
		sum += v
	}
	return sum, sc.Err()
}

// Exited returns a channel closed when the running process ends (nil when
// it is not running): a crash-hook SIGKILL is seen here.
func (p *Proc) Exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	return p.done
}
