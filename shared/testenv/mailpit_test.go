package testenv_test

import (
	"context"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"backinstock/shared/testenv"
)

func sendMail(t *testing.T, addr, to, messageID string) error {
	t.Helper()
	msg := "From: shop@shop.example\r\nTo: " + to + "\r\nSubject: hello\r\nMessage-ID: <" + messageID + ">\r\n\r\nbody " + messageID + "\r\n"
	return smtp.SendMail(addr, nil, "shop@shop.example", []string{to}, []byte(msg))
}

// TestMailpitKeepsWhatItReceivesAndFailsOnDemand: a message sent over
// SMTP is read back through the API, survives a restart, and the server
// answers 550 to a recipient outside AllowedRecipients and what SetChaos
// says to the rest.
func TestMailpitKeepsWhatItReceivesAndFailsOnDemand(t *testing.T) {
	ctx := context.Background()
	m := testenv.NewMailpit(t, testenv.MailpitOptions{AllowedRecipients: `@ok\.example$`, Chaos: true})

	if err := sendMail(t, m.SMTPAddr, "a@ok.example", "m1@shop.example"); err != nil {
		t.Fatal(err)
	}
	msgs, err := m.Messages(ctx)
	if err != nil || len(msgs) != 1 || msgs[0].MessageID != "m1@shop.example" || msgs[0].To[0].Address != "a@ok.example" {
		t.Fatalf("messages %+v, %v", msgs, err)
	}
	full, err := m.Message(ctx, msgs[0].ID)
	if err != nil || !strings.Contains(full.Text, "body m1@shop.example") {
		t.Fatalf("message %+v, %v", full, err)
	}
	h, err := m.Headers(ctx, msgs[0].ID)
	if err != nil || h["Subject"][0] != "hello" {
		t.Fatalf("headers %v, %v", h, err)
	}

	if err := sendMail(t, m.SMTPAddr, "b@elsewhere.example", "m2@shop.example"); err == nil || !strings.HasPrefix(err.Error(), "550") {
		t.Errorf("recipient outside AllowedRecipients: %v, want a 550", err)
	}
	if err := m.SetChaos(ctx, testenv.MailpitChaos{Recipient: testenv.MailpitTrigger{ErrorCode: 451, Probability: 100}}); err != nil {
		t.Fatal(err)
	}
	if err := sendMail(t, m.SMTPAddr, "c@ok.example", "m3@shop.example"); err == nil || !strings.HasPrefix(err.Error(), "451") {
		t.Errorf("with chaos: %v, want a 451", err)
	}
	if err := m.SetChaos(ctx, testenv.MailpitChaos{}); err != nil {
		t.Fatal(err)
	}

	if err := m.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sendMail(t, m.SMTPAddr, "d@ok.example", "m4@shop.example"); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Count(ctx); err != nil || n != 2 {
		t.Errorf("after a restart: %d messages, %v; want the first and the last", n, err)
	}
	m.Stop()
	if err := sendMail(t, m.SMTPAddr, "e@ok.example", "m5@shop.example"); err == nil {
		t.Error("a stopped Mailpit accepted a message")
	}
}

// TestMailpitSearchFindsOneRecipient: Search with to:"address", through a
// client made by MailpitAt, lists the messages to addresses containing it
// (Mailpit matches a part: callers compare the address exactly) and no
// other's.
func TestMailpitSearchFindsOneRecipient(t *testing.T) {
	m := testenv.NewMailpit(t, testenv.MailpitOptions{})
	for i, to := range []string{"a@ok.example", "b@ok.example", "a@ok.example", "aa@ok.example"} {
		if err := sendMail(t, m.SMTPAddr, to, fmt.Sprintf("s%d@shop.example", i)); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := testenv.MailpitAt(m.HTTPURL+"/").Search(context.Background(), `to:"a@ok.example"`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, msg := range msgs {
		got = append(got, msg.MessageID)
	}
	slices.Sort(got)
	if want := []string{"s0@shop.example", "s2@shop.example", "s3@shop.example"}; !slices.Equal(got, want) {
		t.Errorf("to:a@ok.example found %q, want %q", got, want)
	}
}

// TestMailpitVersionMatchesMakefile: the tests build and run the version
// `make` installs into bin/tools, so both find the same binary.
func TestMailpitVersionMatchesMakefile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^MAILPIT_VERSION\s*:=\s*(\S+)`).FindSubmatch(data)
	if m == nil || string(m[1]) != testenv.MailpitVersion {
		t.Errorf("Makefile MAILPIT_VERSION %q, testenv.MailpitVersion %q", m, testenv.MailpitVersion)
	}
}
