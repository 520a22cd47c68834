package main_test

// These tests run the real binary: its --help and exit codes, and the
// test-only SIGKILL at a protocol step (a -tags crashhook build), restarted
// as an operator's supervisor would.

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func TestHelpAndExitCodes(t *testing.T) {
	bin := testenv.BuildBinary(t, ".")
	cases := []struct {
		args []string
		env  []string
		code int
		want string
	}{
		{[]string{"--help"}, nil, 0, "run         deliver a region's edge notifications"},
		{[]string{"vapid-keys"}, nil, 0, "VAPID_PRIVATE_KEY="},
		{[]string{"run", "--region", "us-east-1", "--channels", "app,web", "--providers", "app=fcm,web=webpush", "--vapid-subject", "push@shop.example"}, nil, 2, "FCM_CREDENTIALS_FILE: required for app=fcm"},
		{[]string{"run", "--region", "us-east-1", "--channels", "web", "--providers", "web=webpush", "--vapid-subject", "push@shop.example"}, nil, 2, "VAPID_SUBJECT: \"push@shop.example\" is not a mailto: or https: contact"},
		{[]string{"run", "--region", "us-east-1", "--channels", "web", "--providers", "web=webpush"}, nil, 2, "WISHLIST_API_URL"},
		{[]string{"run", "--help"}, nil, 0, "(env GATEWAY_TEMPLATES_DIR)"},
		{nil, nil, 2, "usage: gateway <command>"},
		{[]string{"serve"}, nil, 2, `unknown command "serve"`},
		{[]string{"run"}, []string{"REGION=us-east-1"}, 2, "EMAIL_FROM: required for the email channel"},
		{[]string{"run", "--region", "us-east-1", "--email-from", "shop@shop.example", "--smtp-tls", "ssl"}, nil, 2, `SMTP_TLS: "ssl" is not one of`},
	}
	for _, c := range cases {
		code, out := testenv.RunBinary(t, bin, c.args, c.env)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("gateway %v: exit %d, want %d with %q:\n%s", c.args, code, c.code, c.want, out)
		}
	}
}

// TestKilledBetweenSendAndMarkerThenRestarted: SIGKILLed right after the
// SMTP server accepted the email (GATEWAY_CRASH_AT=after-send), the
// restarted gateway sends it again — the one documented duplicate, with
// the same Message-ID — and writes one sent receipt; SIGTERM then stops
// it cleanly.
func TestKilledBetweenSendAndMarkerThenRestarted(t *testing.T) {
	bin := testenv.BuildBinary(t, ".", "crashhook")
	k := env.Kafka(t)
	nc, err := nats.Connect(env.NATS(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	region := gatewaytest.Region()
	gatewaytest.CreateStreams(t, js, region)
	mail := testenv.NewMailpit(t, testenv.MailpitOptions{})
	topic := gatewaytest.CreateTopic(t, k, 3)
	host, port, _ := net.SplitHostPort(mail.SMTPAddr)
	base := []string{
		"PATH=" + os.Getenv("PATH"), "REGION=" + region, "KAFKA_BROKERS=" + k.BrokerList(), "REDIS_URL=" + env.Redis(t).URL(),
		"NATS_URL=" + env.NATS(t).URL(), "HTTP_ADDR=127.0.0.1:0", "DELIVERY_STATUS_TOPIC=" + topic,
		"SMTP_HOST=" + host, "SMTP_PORT=" + port, "SMTP_TLS=none", "SMTP_TIMEOUT=800ms", "EMAIL_FROM=Shop <shop@shop.example>",
		"GATEWAY_ACK_WAIT=1s", "GATEWAY_MAX_BACKOFF=4s", "GATEWAY_RETRY_DELAY=200ms",
	}
	start := func(extra ...string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(bin, "run")
		cmd.Env = append(base, extra...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}

	crashing, out := start("GATEWAY_CRASH_AT=after-send")
	n := gatewaytest.Notification(region, "alice", "SKU-7", 1)
	gatewaytest.Publish(t, js, n, "")
	done := make(chan error, 1)
	go func() { done <- crashing.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("gateway ended with %v, want SIGKILL:\n%s", err, out)
		}
	case <-time.After(60 * time.Second):
		_ = crashing.Process.Kill()
		t.Fatalf("gateway did not crash at after-send:\n%s", out)
	}
	ctx := context.Background()
	if c, err := mail.Count(ctx); err != nil || c != 1 {
		t.Fatalf("after the crash mailpit holds %d messages (%v), want 1", c, err)
	}

	restarted, out := start()
	var rs []events.DeliveryStatus
	testenv.Eventually(t, 60*time.Second, func() bool { rs = gatewaytest.Receipts(t, k, topic); return len(rs) >= 1 }, "no receipt after the restart:\n%s", out)
	msgs, err := mail.Messages(ctx)
	if err != nil || len(msgs) != 2 || msgs[0].MessageID != msgs[1].MessageID || msgs[0].MessageID != n.NotificationID+"@shop.example" {
		t.Errorf("mailpit holds %+v (%v): want the email twice, same Message-ID", msgs, err)
	}
	// Attempt 2, or 3 when the restarted gateway met the dead one's claim
	// just before it lapsed (a busy NAK).
	if len(rs) != 1 || rs[0].Status != events.StatusSent || rs[0].Attempt < 2 {
		t.Errorf("receipts:%s", gatewaytest.Describe(rs))
	}
	if err := restarted.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Wait(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, out)
	}
}
