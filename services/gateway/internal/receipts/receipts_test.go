package receipts_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zaptest"

	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/services/gateway/internal/receipts"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

var env *testenv.Env

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &env)) }

func TestReason(t *testing.T) {
	cases := []struct{ in, want string }{
		{"550 5.1.0 mailbox unavailable", "550 5.1.0 mailbox unavailable"},
		{"451 try later\r\n451 really", "451 try later 451 really"},
		{"tab\there  and\x00nul", "tab here and nul"},
		{"", ""},
	}
	for _, c := range cases {
		if got := receipts.Reason(c.in); got != c.want {
			t.Errorf("Reason(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	long := receipts.Reason(strings.Repeat("é", 3000))
	if n := utf8.RuneCountInString(long); n != events.MaxReasonLen || !strings.HasSuffix(long, "…") {
		t.Errorf("a long reason is cut to %d characters", n)
	}
}

func TestWriteIsReadBack(t *testing.T) {
	k := env.Kafka(t)
	topic := gatewaytest.CreateTopic(t, k, 3)
	p, err := kafka.NewProducer(kafka.Config{Brokers: k.Brokers}, kafka.ProducerOptions{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	w := receipts.New(p, topic)
	n := gatewaytest.Notification("us-east-1", "u1", "SKU-1", 1)
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))
	sent := receipts.Status(n, events.StatusSent, "smtp", "<id@shop.example>", 1, "", at)
	failed := receipts.Status(n, events.StatusFailed, "smtp", "", 2, "550 no\r\nsuch user", at)
	for _, d := range []events.DeliveryStatus{sent, failed} {
		if err := w.Write(context.Background(), d, events.NewTraceparent()); err != nil {
			t.Fatal(err)
		}
	}
	got := gatewaytest.Receipts(t, k, topic)
	if len(got) != 2 || got[0] != sent || got[1].Reason != "550 no such user" || got[1].EventID != events.DeliveryEventID(n.NotificationID, 2, events.StatusFailed) {
		t.Errorf("read back:%s", gatewaytest.Describe(got))
	}
	if !got[0].At.Equal(at) || got[0].At.Location() != time.UTC {
		t.Errorf("at %v", got[0].At)
	}

	bad := sent
	bad.Status = "clicked"
	if err := w.Write(context.Background(), bad, ""); err == nil || !strings.Contains(err.Error(), "status: must be one of") {
		t.Errorf("an invalid receipt: %v", err)
	}
}
