package stack_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"backinstock/deploy/devstack/internal/stack"
	"backinstock/shared/testenv"
	"backinstock/topics/catalog"
)

// theStack is one whole local stack that the tests needing the pipeline
// share: starting one costs seconds of make test's budget. TestMain stops it.
var theStack struct {
	once sync.Once
	dir  string
	env  map[string]string
	err  error
	stop func() error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if theStack.stop != nil {
		if err := theStack.stop(); err != nil {
			fmt.Fprintln(os.Stderr, "shared stack:", err)
			code = max(code, 1)
		}
	}
	os.Exit(code)
}

// sharedStack starts the shared stack on first use and returns its
// devstack.env as a map and its data dir.
func sharedStack(t *testing.T) (env map[string]string, dir string) {
	t.Helper()
	theStack.once.Do(func() { theStack.err = startShared(t) })
	if theStack.err != nil {
		t.Fatal(theStack.err)
	}
	return theStack.env, theStack.dir
}

func startShared(t *testing.T) error {
	dir, err := os.MkdirTemp("", "devstack-test")
	if err != nil {
		return err
	}
	p := freePorts(t, 8)
	cfg := stack.Config{
		DataDir:    dir,
		KafkaPorts: []string{strconv.Itoa(p[0]), strconv.Itoa(p[1]), strconv.Itoa(p[2])},
		NATSPort:   p[3], NATSWSPort: p[4], RedisPort: p[5], MailpitSMTPPort: p[6], MailpitPort: p[7],
		HTTPPortBase: testenv.FreePortRange(t, 40), Regions: catalog.DefaultRegions,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- stack.Run(ctx, cfg, zap.NewNop(), io.Discard) }()
	theStack.dir = dir
	theStack.stop = func() error {
		cancel()
		defer os.RemoveAll(dir)
		select {
		case err := <-done:
			return err
		case <-time.After(60 * time.Second):
			return errors.New("the stack did not stop within 60 s")
		}
	}
	envPath := filepath.Join(dir, "devstack.env")
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		select {
		case err := <-done:
			done <- err
			return fmt.Errorf("stack stopped before it was up: %v", err)
		default:
		}
		if b, err := os.ReadFile(envPath); err == nil {
			theStack.env = map[string]string{}
			for _, line := range strings.Split(string(b), "\n") {
				if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
					theStack.env[k] = v
				}
			}
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("devstack.env not written within 5 minutes")
		}
	}
}
