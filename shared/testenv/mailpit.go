package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// MailpitVersion is the Mailpit the tests run: a real SMTP server that keeps
// what it receives and shows it through an HTTP API. The Makefile installs
// the same version into bin/tools (a test keeps the two equal).
const MailpitVersion = "v1.33.1"

// mailpitModule is what `go install` builds.
const mailpitModule = "github.com/axllent/mailpit"

// MailpitOptions configure one Mailpit.
type MailpitOptions struct {
	// Dir holds the database (kept across Restart) and the log. Required.
	Dir string
	// SMTPPort and HTTPPort: 0 picks free ones.
	SMTPPort, HTTPPort int
	// AllowedRecipients, when set, is a regular expression: a recipient not
	// matching it is refused at RCPT TO with "550 5.1.0 mailbox
	// unavailable", a permanent SMTP failure from a real server.
	AllowedRecipients string
	// Chaos enables SetChaos, which makes the server answer SMTP commands
	// with the error code it is given (451 for a transient failure).
	Chaos bool
	// TLSCertFile and TLSKeyFile (PEM) enable STARTTLS; with ImplicitTLS the
	// SMTP port speaks TLS from the first byte instead (SMTPS).
	TLSCertFile, TLSKeyFile string
	RequireSTARTTLS         bool
	ImplicitTLS             bool
	// AuthFile is a password file (user:password per line): AUTH is then
	// required.
	AuthFile string
	// AllowInsecureAuth allows PLAIN and LOGIN without TLS.
	AllowInsecureAuth bool
}

// Mailpit is a mailpit child process.
type Mailpit struct {
	// SMTPAddr is host:port of the SMTP server; HTTPURL the base of its API.
	SMTPAddr string
	HTTPURL  string

	o    MailpitOptions
	bin  string
	cmd  *exec.Cmd
	done chan struct{}
	http *http.Client
}

// MailpitAt is a client of a Mailpit that runs elsewhere (the local
// stack's): its API only, nothing to stop.
func MailpitAt(httpURL string) *Mailpit {
	return &Mailpit{HTTPURL: strings.TrimSuffix(httpURL, "/"), http: &http.Client{Timeout: 30 * time.Second}}
}

// NewMailpit starts a Mailpit for one test and stops it when the test ends.
// It skips the test, saying why, only when no mailpit binary can be found
// or built (MailpitBinary).
func NewMailpit(tb testing.TB, o MailpitOptions) *Mailpit {
	tb.Helper()
	if _, err := MailpitBinary(); err != nil {
		tb.Skipf("no Mailpit to test against: %v (run `make tools`, or set MAILPIT_BIN)", err)
	}
	if o.Dir == "" {
		o.Dir = tb.TempDir()
	}
	m, err := StartMailpit(o)
	if err != nil {
		tb.Fatalf("start mailpit: %v", err)
	}
	tb.Cleanup(m.Close)
	return m
}

// StartMailpit starts mailpit (MailpitBinary) on 127.0.0.1 and waits until
// both its SMTP port and its API answer.
func StartMailpit(o MailpitOptions) (*Mailpit, error) {
	bin, err := MailpitBinary()
	if err != nil {
		return nil, err
	}
	if o.Dir == "" {
		return nil, errors.New("mailpit: Dir is required")
	}
	for _, p := range []*int{&o.SMTPPort, &o.HTTPPort} {
		if *p == 0 {
			if *p, err = FreePort(); err != nil {
				return nil, err
			}
		}
	}
	m := &Mailpit{
		SMTPAddr: "127.0.0.1:" + strconv.Itoa(o.SMTPPort),
		HTTPURL:  "http://127.0.0.1:" + strconv.Itoa(o.HTTPPort),
		o:        o, bin: bin,
		http: &http.Client{Timeout: 10 * time.Second},
	}
	return m, m.start()
}

func (m *Mailpit) start() error {
	if err := os.MkdirAll(m.o.Dir, 0o755); err != nil {
		return err
	}
	args := []string{
		"--smtp", m.SMTPAddr, "--listen", hostOf(m.HTTPURL),
		"--database", filepath.Join(m.o.Dir, "mailpit.db"),
		"--max", "0", // keep every message: a test counts them all
		"--disable-version-check", "--smtp-disable-rdns",
		"--log-file", filepath.Join(m.o.Dir, "mailpit.log"),
	}
	if m.o.AllowedRecipients != "" {
		args = append(args, "--smtp-allowed-recipients", m.o.AllowedRecipients)
	}
	if m.o.Chaos {
		args = append(args, "--enable-chaos")
	}
	if m.o.TLSCertFile != "" {
		args = append(args, "--smtp-tls-cert", m.o.TLSCertFile, "--smtp-tls-key", m.o.TLSKeyFile)
	}
	if m.o.RequireSTARTTLS {
		args = append(args, "--smtp-require-starttls")
	}
	if m.o.ImplicitTLS {
		args = append(args, "--smtp-require-tls")
	}
	if m.o.AuthFile != "" {
		args = append(args, "--smtp-auth-file", m.o.AuthFile)
	}
	if m.o.AllowInsecureAuth {
		args = append(args, "--smtp-auth-allow-insecure")
	}
	cmd := exec.Command(m.bin, args...)
	cmd.SysProcAttr = ownedChild()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start mailpit: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m.ready() {
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(m.o.Dir, "mailpit.log"))
			return fmt.Errorf("mailpit exited at start: %s%s", out.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			m.Stop()
			return fmt.Errorf("mailpit on %s not ready within 30s", m.SMTPAddr)
		}
	}
}

// hostOf is the host:port of a URL: the API base as --listen wants it.
func hostOf(base string) string {
	u, _ := url.Parse(base)
	return u.Host
}

func (m *Mailpit) ready() bool {
	c, err := net.DialTimeout("tcp", m.SMTPAddr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	resp, err := m.http.Get(m.HTTPURL + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop kills the server (its ports refuse connections until Restart); the
// database in Dir keeps what it received.
func (m *Mailpit) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(5 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
	}
	m.cmd = nil
}

// Restart starts it again on the same ports and database.
func (m *Mailpit) Restart() error {
	m.Stop()
	return m.start()
}

// Close stops the server.
func (m *Mailpit) Close() { m.Stop() }

// MailpitAddress is one mailbox of a message.
type MailpitAddress struct {
	Name    string
	Address string
}

// MailpitSummary is a message as the list endpoint shows it.
type MailpitSummary struct {
	ID        string
	MessageID string
	From      MailpitAddress
	To        []MailpitAddress
	Subject   string
	Snippet   string
	// Created is when the server received the message.
	Created time.Time
}

// MailpitMessage is one message with its parts.
type MailpitMessage struct {
	ID        string
	MessageID string
	From      MailpitAddress
	To        []MailpitAddress
	Subject   string
	Text      string
	HTML      string
}

// Messages lists every message held, newest first.
func (m *Mailpit) Messages(ctx context.Context) ([]MailpitSummary, error) {
	return m.list(ctx, "/api/v1/messages?")
}

// Search lists the messages matching a Mailpit search query, newest
// first. Mailpit matches a part of a field: to:"a@x.example" also finds
// "aa@x.example", so callers compare addresses exactly.
func (m *Mailpit) Search(ctx context.Context, query string) ([]MailpitSummary, error) {
	return m.list(ctx, "/api/v1/search?query="+url.QueryEscape(query)+"&")
}

// list reads every page of a listing. The pages are newest first, so a
// message arriving while they are read pushes the older ones one place
// on: one may show on two pages (never on none), and it is kept once, by
// Mailpit's own id (a second copy of an email gets an id of its own).
func (m *Mailpit) list(ctx context.Context, path string) ([]MailpitSummary, error) {
	var out []MailpitSummary
	seen := map[string]bool{}
	for start := 0; ; {
		var page struct {
			Total    int
			Messages []MailpitSummary
		}
		if err := m.get(ctx, path+"limit=500&start="+strconv.Itoa(start), &page); err != nil {
			return nil, err
		}
		for _, msg := range page.Messages {
			if !seen[msg.ID] {
				seen[msg.ID] = true
				out = append(out, msg)
			}
		}
		start += len(page.Messages)
		if len(page.Messages) == 0 || start >= page.Total {
			return out, nil
		}
	}
}

// Count is how many messages the server holds.
func (m *Mailpit) Count(ctx context.Context) (int, error) {
	var page struct{ Total int }
	err := m.get(ctx, "/api/v1/messages?limit=1", &page)
	return page.Total, err
}

// Message reads one message with its text and HTML parts.
func (m *Mailpit) Message(ctx context.Context, id string) (MailpitMessage, error) {
	var msg MailpitMessage
	err := m.get(ctx, "/api/v1/message/"+url.PathEscape(id), &msg)
	return msg, err
}

// Headers reads one message's headers, each with every value it has.
func (m *Mailpit) Headers(ctx context.Context, id string) (map[string][]string, error) {
	var h map[string][]string
	err := m.get(ctx, "/api/v1/message/"+url.PathEscape(id)+"/headers", &h)
	return h, err
}

// MailpitTrigger makes the server fail an SMTP step with ErrorCode (400 to
// 599) at the given Probability (0 to 100 percent).
type MailpitTrigger struct {
	ErrorCode   int
	Probability int
}

// MailpitChaos says which SMTP steps fail: MAIL FROM (Sender), RCPT TO
// (Recipient), AUTH (Authentication). The zero value fails nothing.
type MailpitChaos struct {
	Sender, Recipient, Authentication MailpitTrigger
}

// SetChaos replaces the server's failure triggers (Options.Chaos must be
// set).
func (m *Mailpit) SetChaos(ctx context.Context, c MailpitChaos) error {
	body, err := json.Marshal(c)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, m.HTTPURL+"/api/v1/chaos", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.http.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit chaos: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("mailpit chaos: %s: %s", resp.Status, b)
	}
	return nil
}

func (m *Mailpit) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.HTTPURL+path, nil)
	if err != nil {
		return err
	}
	resp, err := m.http.Do(req)
	if err != nil {
		return fmt.Errorf("mailpit GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("mailpit GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("mailpit GET %s: %w", path, err)
	}
	return nil
}

var mailpitBin struct {
	once sync.Once
	path string
	err  error
}

// MailpitBinary finds mailpit the way the repository's other tools are
// found: $MAILPIT_BIN; then bin/tools/mailpit at the root of the repository
// (where `make` installs MailpitVersion, as it does staticcheck); then
// mailpit on PATH. Where there is none it builds MailpitVersion into
// bin/tools with `go install` (from the module cache or the Go proxy, a
// couple of minutes the first time), one test process at a time under a
// file lock. The error says what was tried.
func MailpitBinary() (string, error) {
	mailpitBin.once.Do(func() { mailpitBin.path, mailpitBin.err = findMailpit() })
	return mailpitBin.path, mailpitBin.err
}

func findMailpit() (string, error) {
	if p := os.Getenv("MAILPIT_BIN"); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("MAILPIT_BIN=%s is not an executable file", p)
	}
	tools, err := toolsDir()
	if err != nil {
		return "", err
	}
	local := filepath.Join(tools, "mailpit")
	if isExecutable(local) {
		return local, nil
	}
	if p, err := exec.LookPath("mailpit"); err == nil {
		return p, nil
	}
	if err := installMailpit(tools); err != nil {
		return "", fmt.Errorf("mailpit is neither in %s nor on PATH, and building it failed: %w", tools, err)
	}
	return local, nil
}

// toolsDir is <repository root>/bin/tools, the root being the nearest
// directory above the working directory that holds go.work; outside the
// repository, a folder in the user's cache.
func toolsDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return filepath.Join(d, "bin", "tools"), nil
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no repository root above %s and no user cache: %w", dir, err)
	}
	return filepath.Join(cache, "backinstock", "tools"), nil
}

// installMailpit runs `go install mailpit@MailpitVersion` into dir. Test
// binaries of several packages run at once; the lock makes one build and
// the others wait for it and use its result.
func installMailpit(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".mailpit.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	if isExecutable(filepath.Join(dir, "mailpit")) {
		return nil // another process built it while this one waited
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return errors.New("no go command on PATH to build it with")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "install", mailpitModule+"@"+MailpitVersion)
	// Outside any workspace or module: `go install pkg@version` builds the
	// tool with its own go.mod, whatever directory the test runs in.
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOWORK=off", "GOFLAGS=-buildvcs=false")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go install %s@%s: %v\n%s", mailpitModule, MailpitVersion, err, out)
	}
	return nil
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// PID is the mailpit process id (0 when stopped), for a benchmark that
// reads its CPU time.
func (m *Mailpit) PID() int {
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}
