package email_test

import (
	"context"
	"fmt"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"backinstock/services/gateway/internal/email"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

// TestMain fails the package if a test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func clientFor(t *testing.T, m *testenv.Mailpit, mut func(*email.Config)) *email.Client {
	t.Helper()
	host, port, _ := net.SplitHostPort(m.SMTPAddr)
	p, _ := strconv.Atoi(port)
	c := email.Config{Host: host, Port: p, TLS: email.TLSNone, Timeout: 5 * time.Second, Conns: 4, From: "Shop <shop@shop.example>"}
	if mut != nil {
		mut(&c)
	}
	cl, err := email.NewClient(c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func message(to, id string) email.Message {
	return email.Message{To: to, Subject: "Back in stock: kettle", Text: "plain " + id, HTML: "<p>html " + id + "</p>", MessageID: id + "@shop.example"}
}

// only returns the one message Mailpit holds, failing otherwise.
func only(t *testing.T, m *testenv.Mailpit) (testenv.MailpitMessage, map[string][]string) {
	t.Helper()
	ctx := context.Background()
	msgs, err := m.Messages(ctx)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("mailpit holds %d messages (%v), want 1", len(msgs), err)
	}
	full, err := m.Message(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	h, err := m.Headers(ctx, msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return full, h
}

func TestSendReachesMailpit(t *testing.T) {
	m := testenv.NewMailpit(t, testenv.MailpitOptions{})
	cl := clientFor(t, m, nil)
	msg := message("shopper@example.com", "n1")
	msg.ListUnsubscribe = "https://shop.example/u?t=abc"
	if err := cl.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	got, h := only(t, m)
	if got.MessageID != "n1@shop.example" || got.Subject != "Back in stock: kettle" || got.From.Address != "shop@shop.example" ||
		got.To[0].Address != "shopper@example.com" || !strings.Contains(got.Text, "plain n1") || !strings.Contains(got.HTML, "<p>html n1</p>") {
		t.Errorf("message %+v", got)
	}
	if h["List-Unsubscribe"][0] != "<https://shop.example/u?t=abc>" || h["List-Unsubscribe-Post"][0] != "List-Unsubscribe=One-Click" {
		t.Errorf("unsubscribe headers %v", h)
	}
}

func TestProviderRendersAndDerivesTheMessageID(t *testing.T) {
	m := testenv.NewMailpit(t, testenv.MailpitOptions{})
	templates, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	p := email.NewProvider(clientFor(t, m, nil), templates, "mail.shop.example")
	n := events.Notification{
		NotificationID: events.NotificationID("u1", "SKU-1", "us-east-1", 1, "email"), UserID: "u1", SKU: "SKU-1", Region: "us-east-1",
		Channel: "email", Episode: 1, Title: "Green kettle", Body: "Green kettle is back in stock at 19.99.", URL: "https://shop.example/p/SKU-1",
		Locale: "de-DE", Contact: "u1@example.com",
	}
	id, err := p.Send(context.Background(), n)
	if err != nil || id != "<"+n.NotificationID+"@mail.shop.example>" {
		t.Fatalf("Send = %q, %v", id, err)
	}
	got, _ := only(t, m)
	if got.MessageID != n.NotificationID+"@mail.shop.example" || got.Subject != "Wieder da: Green kettle" || !strings.Contains(got.HTML, "https://shop.example/p/SKU-1") {
		t.Errorf("message %+v", got)
	}

	n.Contact = ""
	if _, err := p.Send(context.Background(), n); !permanent(err, "no_contact") {
		t.Errorf("without contact: %v", err)
	}
}

func permanent(err error, code string) bool {
	p, c := retry.Classify(err)
	return err != nil && p && c == code
}

func transient(err error, code string) bool {
	p, c := retry.Classify(err)
	return err != nil && !p && c == code
}

func TestFailuresAreClassified(t *testing.T) {
	ctx := context.Background()
	m := testenv.NewMailpit(t, testenv.MailpitOptions{AllowedRecipients: `@example\.com$`, Chaos: true})
	cl := clientFor(t, m, nil)

	if err := cl.Send(ctx, message("nobody@refused.example", "n1")); !permanent(err, "smtp_550") {
		t.Errorf("refused recipient: %v, want permanent smtp_550", err)
	}
	if err := cl.Send(ctx, message("not an address", "n2")); !permanent(err, "bad_address") {
		t.Errorf("malformed address: %v, want permanent bad_address", err)
	}
	if err := m.SetChaos(ctx, testenv.MailpitChaos{Recipient: testenv.MailpitTrigger{ErrorCode: 451, Probability: 100}}); err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(ctx, message("a@example.com", "n3")); !transient(err, "smtp_451") {
		t.Errorf("greylisted: %v, want transient smtp_451", err)
	}
	if err := m.SetChaos(ctx, testenv.MailpitChaos{}); err != nil {
		t.Fatal(err)
	}
	// The connection the refusals went over is still good.
	if err := cl.Send(ctx, message("a@example.com", "n4")); err != nil {
		t.Fatal(err)
	}

	m.Stop()
	if err := cl.Send(ctx, message("a@example.com", "n5")); !transient(err, "connect") {
		t.Errorf("server down: %v, want transient connect", err)
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(ctx, message("a@example.com", "n6")); err != nil {
		t.Errorf("after the restart: %v", err)
	}
	if n, err := m.Count(ctx); err != nil || n != 2 {
		t.Errorf("mailpit holds %d messages (%v), want n4 and n6", n, err)
	}
}

// TestStaleConnectionIsReplaced: a pooled connection the server dropped
// (here by restarting) is found before the message goes out, and replaced.
func TestStaleConnectionIsReplaced(t *testing.T) {
	ctx := context.Background()
	m := testenv.NewMailpit(t, testenv.MailpitOptions{})
	cl := clientFor(t, m, func(c *email.Config) { c.Conns = 1 })
	if err := cl.Send(ctx, message("a@example.com", "n1")); err != nil {
		t.Fatal(err)
	}
	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Send(ctx, message("a@example.com", "n2")); err != nil {
		t.Fatalf("over a connection the server dropped: %v", err)
	}
}

func TestConcurrentSendsShareABoundedPool(t *testing.T) {
	ctx := context.Background()
	m := testenv.NewMailpit(t, testenv.MailpitOptions{})
	cl := clientFor(t, m, func(c *email.Config) { c.Conns = 3 })
	var wg sync.WaitGroup
	errs := make(chan error, 30)
	for i := range 30 {
		wg.Go(func() { errs <- cl.Send(ctx, message("a@example.com", fmt.Sprintf("n%d", i))) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n, err := m.Count(ctx); err != nil || n != 30 {
		t.Errorf("mailpit holds %d messages (%v), want 30", n, err)
	}
}

func TestTLSAndAuth(t *testing.T) {
	ctx := context.Background()
	tf, err := testenv.WriteTLSFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cert, key, ca := tf.Cert, tf.Key, tf.CA
	auth := filepath.Join(t.TempDir(), "passwords")
	if err := os.WriteFile(auth, []byte("gateway:s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withAuth := func(mech, password string) func(*email.Config) {
		return func(c *email.Config) { c.Username, c.Password, c.Auth = "gateway", password, mech }
	}
	cases := []struct {
		name string
		opts testenv.MailpitOptions
		mut  func(*email.Config)
		ok   bool
	}{
		{"starttls with auth", testenv.MailpitOptions{TLSCertFile: cert, TLSKeyFile: key, RequireSTARTTLS: true, AuthFile: auth},
			func(c *email.Config) { c.TLS, c.CAFile = email.TLSStartTLS, ca; withAuth("PLAIN", "s3cret")(c) }, true},
		{"starttls, auth discovered", testenv.MailpitOptions{TLSCertFile: cert, TLSKeyFile: key, AuthFile: auth},
			func(c *email.Config) { c.TLS, c.CAFile = email.TLSStartTLS, ca; withAuth("", "s3cret")(c) }, true},
		{"implicit tls with auth", testenv.MailpitOptions{TLSCertFile: cert, TLSKeyFile: key, ImplicitTLS: true, AuthFile: auth},
			func(c *email.Config) { c.TLS, c.CAFile = email.TLSImplicit, ca; withAuth("LOGIN", "s3cret")(c) }, true},
		{"wrong password", testenv.MailpitOptions{TLSCertFile: cert, TLSKeyFile: key, RequireSTARTTLS: true, AuthFile: auth},
			func(c *email.Config) { c.TLS, c.CAFile = email.TLSStartTLS, ca; withAuth("PLAIN", "wrong")(c) }, false},
		{"untrusted certificate", testenv.MailpitOptions{TLSCertFile: cert, TLSKeyFile: key, RequireSTARTTLS: true},
			func(c *email.Config) { c.TLS = email.TLSStartTLS }, false},
		{"starttls required, server without tls", testenv.MailpitOptions{},
			func(c *email.Config) { c.TLS = email.TLSStartTLS }, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := testenv.NewMailpit(t, c.opts)
			err := clientFor(t, m, c.mut).Send(ctx, message("a@example.com", "n1"))
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				only(t, m)
				return
			}
			// Set-up failures are retried, not charged to the message.
			if !transient(err, "connect") {
				t.Errorf("got %v, want a transient connect error", err)
			}
		})
	}
}

// rsetDropper is an SMTP server that accepts every message and then drops
// the connection at the RSET go-mail sends after it: the one failure after
// which the message has nonetheless been delivered. (Mailpit's chaos
// settings cannot fail an RSET.) It counts the messages it accepted.
func rsetDropper(t *testing.T) (addr string, accepted func() int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				tp := textproto.NewConn(conn)
				_ = tp.PrintfLine("220 rset-dropper ready")
				for inData := false; ; {
					line, err := tp.ReadLine()
					if err != nil {
						return
					}
					switch cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0]); {
					case inData:
						if line == "." {
							inData = false
							mu.Lock()
							n++
							mu.Unlock()
							_ = tp.PrintfLine("250 queued")
						}
					case cmd == "EHLO":
						_ = tp.PrintfLine("250-rset-dropper\r\n250 8BITMIME")
					case cmd == "DATA":
						inData = true
						_ = tp.PrintfLine("354 go on")
					case cmd == "RSET":
						return // the connection breaks after the delivery
					default:
						_ = tp.PrintfLine("250 ok")
					}
				}
			}()
		}
	}()
	return l.Addr().String(), func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// TestFailureAfterTheFinalDotIsADelivery: when the server has accepted the
// message and only the RSET after it fails, Send reports success (retrying
// would send the email twice), and the next Send works on a new connection.
func TestFailureAfterTheFinalDotIsADelivery(t *testing.T) {
	addr, accepted := rsetDropper(t)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	cl, err := email.NewClient(email.Config{Host: host, Port: p, TLS: email.TLSNone, Timeout: 5 * time.Second, Conns: 1, From: "shop@shop.example"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	for i := range 2 {
		if err := cl.Send(context.Background(), message("a@example.com", fmt.Sprintf("rset-%d", i))); err != nil {
			t.Fatalf("send %d: %v, want success: the server took the message", i, err)
		}
		if got := accepted(); got != i+1 {
			t.Fatalf("after send %d the server holds %d messages, want %d", i, got, i+1)
		}
	}
}
