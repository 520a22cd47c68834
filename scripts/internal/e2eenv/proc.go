package e2eenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one service binary run as a child process: its own HTTP port, its
// configuration in the environment and its output in a log file, so a fault
// scenario can SIGKILL and restart it exactly as an orchestrator would.
type Proc struct {
	Name string
	Bin  string
	Args []string
	Env  []string
	// Addr is the HTTP listen address (health, metrics, API).
	Addr    string
	LogPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
	runs int
}

// Start launches the process; its output is appended to LogPath.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		return fmt.Errorf("start %s: already running", p.Name)
	}
	f, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.runs++
	fmt.Fprintf(f, "\n===== start #%d of %s at %s: %s %s\n", p.runs, p.Name, time.Now().Format(time.RFC3339Nano), p.Bin, strings.Join(p.Args, " "))
	cmd := exec.Command(p.Bin, p.Args...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	// Its own process group, so a Ctrl-C of the test does not reach it first
	// and Close decides the order of shutdown.
	// Pdeathsig: a crashed or killed driver leaves no service running.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.log = cmd, done, f
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	return nil
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Kill sends SIGKILL and waits for the process to be gone: nothing is
// flushed, no offset is committed, nothing is drained.
func (p *Proc) Kill() error {
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

// Stop sends SIGTERM and waits up to timeout for a graceful exit, then kills.
func (p *Proc) Stop(timeout time.Duration) error {
	err := p.signal(syscall.SIGTERM, timeout)
	if err != nil {
		return p.signal(syscall.SIGKILL, 10*time.Second)
	}
	return nil
}

func (p *Proc) signal(sig syscall.Signal, timeout time.Duration) error {
	p.mu.Lock()
	cmd, done, f := p.cmd, p.done, p.log
	p.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(timeout):
		return fmt.Errorf("%s did not exit within %s of %s", p.Name, timeout, sig)
	}
	p.mu.Lock()
	if p.cmd == cmd {
		fmt.Fprintf(f, "===== %s: %s at %s (%s)\n", p.Name, sig, time.Now().Format(time.RFC3339Nano), cmd.ProcessState)
		f.Close()
		p.cmd, p.done, p.log = nil, nil, nil
	}
	p.mu.Unlock()
	return nil
}

// Restart starts a killed or stopped process again with the same settings.
func (p *Proc) Restart() error {
	if p.Running() {
		if err := p.Kill(); err != nil {
			return err
		}
	}
	p.mu.Lock()
	if p.cmd != nil { // exited on its own: reap the bookkeeping
		p.log.Close()
		p.cmd, p.done, p.log = nil, nil, nil
	}
	p.mu.Unlock()
	return p.Start()
}

// WaitReady polls GET /readyz until it answers 200, the process exits, or
// timeout passes.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last string
	for {
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		if done == nil {
			return fmt.Errorf("%s is not running", p.Name)
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited while starting; log tail:\n%s", p.Name, p.Tail(40))
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+"/readyz", nil)
		resp, err := client.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(b.String()))
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready within %s (last: %s); log tail:\n%s", p.Name, timeout, last, p.Tail(40))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Ready asks GET /readyz once and returns the status and the body (each
// check's result by name).
func (p *Proc) Ready(ctx context.Context) (int, map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+"/readyz", nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s /readyz: %w", p.Name, err)
	}
	defer resp.Body.Close()
	var checks map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&checks); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("%s /readyz: %w", p.Name, err)
	}
	return resp.StatusCode, checks, nil
}

// PID is the running process's id, 0 when it is not running.
func (p *Proc) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Tail returns the last n lines of the process's log.
func (p *Proc) Tail(n int) string {
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
