// Package email is the gateway's email channel: an SMTP client (through
// github.com/wneessen/go-mail, which speaks STARTTLS, implicit TLS and the
// AUTH mechanisms) that keeps a bounded pool of open connections, and the
// provider that renders a notification with its locale's templates and
// sends it with a Message-ID derived from the notification id.
//
// Every error it returns is classified for the retry rules: an SMTP 5xx
// reply or an address the message cannot carry is permanent; a 4xx reply,
// a connection that fails or drops, and anything before the server took
// the envelope are transient.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/textproto"
	"os"
	"strconv"
	"time"

	mail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"backinstock/services/gateway/internal/retry"
)

// TLS modes of Config.TLS.
const (
	// TLSStartTLS upgrades the connection with STARTTLS and refuses a
	// server that does not offer it (submission, port 587).
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, port 465).
	TLSImplicit = "implicit"
	// TLSNone sends in the clear: a relay on the same host or network, a
	// test server.
	TLSNone = "none"
)

// TLSModes lists the modes Config.TLS accepts.
var TLSModes = []string{TLSStartTLS, TLSImplicit, TLSNone}

// AuthMechanisms lists the SMTP AUTH mechanisms Config.Auth accepts
// (go-mail's names). AUTODISCOVER takes the strongest the server offers;
// the -NOENC variants allow PLAIN and LOGIN without TLS.
var AuthMechanisms = []string{
	string(mail.SMTPAuthAutoDiscover), string(mail.SMTPAuthPlain), string(mail.SMTPAuthLogin),
	string(mail.SMTPAuthCramMD5), string(mail.SMTPAuthSCRAMSHA1), string(mail.SMTPAuthSCRAMSHA256),
	string(mail.SMTPAuthPlainNoEnc), string(mail.SMTPAuthLoginNoEnc),
}

// Config says how to reach the SMTP server. The app validates it, naming
// each setting.
type Config struct {
	Host string
	Port int
	TLS  string
	// CAFile is a PEM bundle to trust instead of the system's; SkipVerify
	// trusts any certificate (testing only).
	CAFile     string
	SkipVerify bool
	// Username enables AUTH with Auth ("" means AUTODISCOVER).
	Username, Password string
	Auth               string
	// HELO is the name this client greets with (default: the host name).
	HELO string
	// Timeout bounds the dial and each SMTP command.
	Timeout time.Duration
	// Conns bounds the open connections; Send waits for one beyond it.
	Conns int
	// From is the From address, "Shop <shop@example.com>" or a bare address.
	From string
}

// Client sends over a pool of SMTP connections.
type Client struct {
	mc    *mail.Client
	from  string
	slots chan struct{}     // one per open connection
	idle  chan *smtp.Client // connections ready for the next message
}

// NewClient builds the client; it connects on the first Send.
func NewClient(c Config) (*Client, error) {
	opts := []mail.Option{mail.WithTimeout(c.Timeout)}
	tc := &tls.Config{ServerName: c.Host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.SkipVerify} //nolint:gosec // opt-in, for tests
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("SMTP CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("SMTP CA file %s: no PEM certificate", c.CAFile)
		}
		tc.RootCAs = pool
	}
	opts = append(opts, mail.WithTLSConfig(tc))
	switch c.TLS {
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		return nil, fmt.Errorf("SMTP TLS mode %q is not one of %v", c.TLS, TLSModes)
	}
	opts = append(opts, mail.WithPort(c.Port)) // after WithSSL, which sets 465
	if c.Username != "" {
		auth := mail.SMTPAuthType(c.Auth)
		if c.Auth == "" {
			auth = mail.SMTPAuthAutoDiscover
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(c.Username), mail.WithPassword(c.Password))
	}
	if c.HELO != "" {
		opts = append(opts, mail.WithHELO(c.HELO))
	}
	mc, err := mail.NewClient(c.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("smtp client: %w", err)
	}
	n := max(c.Conns, 1)
	return &Client{mc: mc, from: c.From, slots: make(chan struct{}, n), idle: make(chan *smtp.Client, n)}, nil
}

// Message is one email to send.
type Message struct {
	To        string
	Subject   string
	HTML      string
	Text      string
	MessageID string // without the angle brackets
	// ListUnsubscribe, when set, is the one-click unsubscribe URL: the
	// message then carries List-Unsubscribe and List-Unsubscribe-Post:
	// List-Unsubscribe=One-Click (RFC 8058). Empty until the wishlist
	// serves signed unsubscribe URLs (issue 14, a later step).
	ListUnsubscribe string
}

// Send delivers m over a pooled connection, opening one when none is idle
// (at most Conns at once). The error is classified (retry.Classify).
func (c *Client) Send(ctx context.Context, m Message) error {
	msg, err := c.build(m)
	if err != nil {
		return err
	}
	select {
	case c.slots <- struct{}{}:
	case <-ctx.Done():
		return retry.Transient("canceled", ctx.Err())
	}
	defer func() { <-c.slots }()
	conn, pooled := c.take()
	if conn == nil {
		if conn, err = c.dial(ctx); err != nil {
			return err
		}
	}
	err = c.mc.SendWithSMTPClient(conn, msg)
	if err != nil && pooled && stale(err) {
		// The server closed an idle connection: the NOOP before MAIL FROM
		// found it, so nothing of this message went out. Once more, fresh.
		_ = conn.Close()
		if conn, err = c.dial(ctx); err != nil {
			return err
		}
		err = c.mc.SendWithSMTPClient(conn, msg)
	}
	if err != nil && msg.IsDelivered() {
		// The server accepted the final dot; only go-mail's RSET after it
		// failed. The message went out: retrying it would send it twice.
		// The connection's state is unknown, so it is closed.
		_ = conn.Close()
		return nil
	}
	if err != nil {
		c.release(conn, replied(err))
		return classify(err)
	}
	c.put(conn)
	return nil
}

func (c *Client) build(m Message) (*mail.Msg, error) {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(c.from); err != nil {
		return nil, retry.Permanent("bad_from", err)
	}
	if err := msg.To(m.To); err != nil {
		return nil, retry.Permanent("bad_address", fmt.Errorf("recipient %q: %w", m.To, err))
	}
	msg.Subject(m.Subject)
	msg.SetMessageIDWithValue(m.MessageID)
	msg.SetDate()
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	if m.ListUnsubscribe != "" {
		msg.SetGenHeader(mail.HeaderListUnsubscribe, "<"+m.ListUnsubscribe+">")
		msg.SetGenHeader(mail.HeaderListUnsubscribePost, "List-Unsubscribe=One-Click")
	}
	return msg, nil
}

func (c *Client) dial(ctx context.Context) (*smtp.Client, error) {
	conn, err := c.mc.DialToSMTPClientWithContext(ctx)
	if err != nil {
		// Whatever fails before the envelope (refused, TLS, a 5xx greeting,
		// AUTH) is the gateway's setup or the server's state, not this
		// message: retry it rather than fail every notification.
		return nil, retry.Transient("connect", fmt.Errorf("connect to SMTP server %s: %w", c.mc.ServerAddr(), err))
	}
	return conn, nil
}

func (c *Client) take() (*smtp.Client, bool) {
	select {
	case conn := <-c.idle:
		return conn, true
	default:
		return nil, false
	}
}

// release hands back the connection of a failed transaction. One the
// server answered on goes back to the pool only after an RSET it accepts:
// go-mail resets after a refused MAIL or RCPT but not after a refused DATA,
// and a server may keep the envelope after refusing the final dot (Mailpit
// does, after its "451 Unable to process mail"), so the next message's MAIL
// FROM would meet "503 Bad sequence of commands" and fail for good. Any
// other connection's state is unknown: it is closed.
func (c *Client) release(conn *smtp.Client, answered bool) {
	if answered && conn.Reset() == nil {
		c.put(conn)
		return
	}
	_ = conn.Close()
}

func (c *Client) put(conn *smtp.Client) {
	select {
	case c.idle <- conn:
	default:
		_ = conn.Close()
	}
}

// Close says QUIT on every idle connection.
func (c *Client) Close() error {
	var errs []error
	for {
		select {
		case conn := <-c.idle:
			if err := conn.Quit(); err != nil {
				_ = conn.Close()
				errs = append(errs, err)
			}
		default:
			return errors.Join(errs...)
		}
	}
}

// stale reports the connection check go-mail makes before each message
// failing: the pooled connection is gone, the message untouched.
func stale(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.Reason == mail.ErrConnCheck
}

// replied reports an error that is the server's SMTP reply (after which
// go-mail has reset the transaction), not a broken connection.
func replied(err error) bool {
	var se *mail.SendError
	return errors.As(err, &se) && se.ErrorCode() >= 400
}

// classify turns a send error into a retry.Error.
func classify(err error) error {
	var se *mail.SendError
	if !errors.As(err, &se) {
		return retry.Transient("connection", err)
	}
	code := se.ErrorCode()
	if code == 0 {
		var tp *textproto.Error
		if errors.As(err, &tp) {
			code = tp.Code
		}
	}
	switch {
	case code == 503:
		// "Bad sequence of commands" is about the session's state, never
		// the message: retried, on a connection reset with RSET.
		return retry.Transient("smtp_503", err)
	case code >= 500:
		return retry.Permanent("smtp_"+strconv.Itoa(code), err)
	case code >= 400:
		return retry.Transient("smtp_"+strconv.Itoa(code), err)
	case se.Reason == mail.ErrGetSender || se.Reason == mail.ErrGetRcpts:
		return retry.Permanent("bad_address", err)
	default:
		// The connection broke mid-transaction. After DATA this is the
		// one ambiguous case: the server may have taken the message. It is
		// retried (docs/delivery-semantics.md counts it in the bound).
		return retry.Transient("connection", err)
	}
}
