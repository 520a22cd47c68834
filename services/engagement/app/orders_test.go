package app_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"backinstock/services/engagement/app"
	"backinstock/shared/kafka"
	"backinstock/shared/testenv"
	"backinstock/topics/events"
)

// orders reads every record on the test's orders topic.
func (e *attrEnv) records(t *testing.T) []events.Order {
	t.Helper()
	cl, err := kafka.NewClient(kafka.Config{Brokers: e.k.Brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []events.Order
	testenv.ReadTopic(t, cl, e.orders, func(m *sarama.ConsumerMessage) {
		o, err := events.DecodeOrder(m.Value)
		if err != nil {
			t.Fatalf("order at %d/%d: %v", m.Partition, m.Offset, err)
		}
		if string(m.Key) != o.OrderID || kafka.ConsumerHeaders(m).Get(events.HeaderSchema) != "Order/1" {
			t.Fatalf("order record key %q headers %v", m.Key, kafka.ConsumerHeaders(m).Keys())
		}
		out = append(out, o)
	})
	return out
}

// TestPostOrderIsIdempotentByOrderID: the first post is written to
// orders.v1 and answered 202; the same body again (ordered_at in another
// offset, the same instant) answers the same 202 without a second record;
// another body under the same id is a 409 naming order_id; without the
// token, 401; nothing is written for any refused request.
func TestPostOrderIsIdempotentByOrderID(t *testing.T) {
	e := newAttrEnv(t)
	s := e.run(t, env.Redis(t).URL(), app.AttributionOff)
	at := time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
	id := e.prefix + "-o-1"
	body := orderBody(id, "u1", at, "EUR", line{e.sku("a"), 2, "19.99"})

	code, first := post(t, s.base, body, true)
	if code != http.StatusAccepted || !strings.Contains(first, `"status":"accepted"`) || !strings.Contains(first, `"lines":1`) {
		t.Fatalf("first post: %d %s", code, first)
	}
	same := orderBody(id, "u1", at, "EUR", line{e.sku("a"), 2, "19.99"})
	same["ordered_at"] = at.In(time.FixedZone("CET", 3600)).Format(time.RFC3339)
	if code, again := post(t, s.base, same, true); code != http.StatusAccepted || again != first {
		t.Fatalf("the same order again: %d %s, want 202 %s", code, again, first)
	}
	changed := orderBody(id, "u1", at, "EUR", line{e.sku("a"), 3, "19.99"})
	if code, b := post(t, s.base, changed, true); code != http.StatusConflict || !strings.Contains(b, "order_id: order "+id+" was already accepted with another body") {
		t.Fatalf("a changed body: %d %s", code, b)
	}
	if code, b := post(t, s.base, orderBody(e.prefix+"-o-2", "u1", at, "EUR", line{e.sku("a"), 1, "1"}), false); code != http.StatusUnauthorized {
		t.Fatalf("without the token: %d %s", code, b)
	}
	if got := e.records(t); len(got) != 1 || got[0].OrderID != id || got[0].Lines[0].Quantity != 2 || !got[0].OrderedAt.Equal(at) {
		t.Fatalf("orders.v1 holds %+v, want the first order once", got)
	}
	if v := counter(t, s.reg, "backinstock_engagement_orders_received_total"); v != 1 {
		t.Errorf("orders received %v, want 1", v)
	}
}

// TestPostOrderNamesTheBadField: each bad body is refused naming the
// field (400 when it cannot be read, 422 when it breaks a rule), and
// nothing reaches orders.v1.
func TestPostOrderNamesTheBadField(t *testing.T) {
	e := newAttrEnv(t)
	s := e.run(t, env.Redis(t).URL(), app.AttributionOff)
	at := time.Date(2026, 11, 30, 18, 0, 0, 0, time.UTC)
	valid := func(mut func(m map[string]any)) map[string]any {
		m := orderBody(e.prefix+"-o-1", "u1", at, "EUR", line{e.sku("a"), 2, "19.99"})
		mut(m)
		return m
	}
	cases := []struct {
		name string
		body any
		code int
		want string
	}{
		{"order id missing", valid(func(m map[string]any) { delete(m, "order_id") }), 422, "order_id: required"},
		{"order id with a dot", valid(func(m map[string]any) { m["order_id"] = "a.b" }), 422, "order_id: must match"},
		{"user missing", valid(func(m map[string]any) { delete(m, "user_id") }), 422, "user_id: required"},
		{"ordered_at missing", valid(func(m map[string]any) { delete(m, "ordered_at") }), 422, "ordered_at: required"},
		{"currency lower case", valid(func(m map[string]any) { m["currency"] = "eur" }), 422, "currency: must be an ISO 4217 code"},
		{"no lines", valid(func(m map[string]any) { m["lines"] = []line{} }), 422, "lines: must hold 1 to 100 lines, got 0"},
		{"quantity 0", valid(func(m map[string]any) { m["lines"] = []line{{e.sku("a"), 0, "1"}} }), 422, "lines[0].quantity: must be between 1 and 1000000"},
		{"bad sku", valid(func(m map[string]any) { m["lines"] = []line{{"a b", 1, "1"}} }), 422, "lines[0].sku: must match"},
		{"price with a comma", valid(func(m map[string]any) { m["lines"] = []line{{e.sku("a"), 1, "19,99"}} }), 422, `lines[0].unit_price: must be a decimal string`},
		{"cents of a yen", valid(func(m map[string]any) { m["currency"] = "JPY" }), 422, "lines[0].unit_price: has 2 decimals; JPY has 0"},
		{"price a number", []byte(`{"order_id":"x","user_id":"u","ordered_at":"2026-11-30T18:00:00Z","currency":"EUR","lines":[{"sku":"a","quantity":1,"unit_price":19.99}]}`), 400, "unit_price"},
		{"unknown field", valid(func(m map[string]any) { m["total"] = "39.98" }), 400, "total"},
		{"not JSON", []byte(`{"order_id":`), 400, "malformed JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, b := post(t, s.base, c.body, true)
			if code != c.code || !strings.Contains(b, c.want) {
				t.Fatalf("%d %s, want %d naming %q", code, b, c.code, c.want)
			}
		})
	}
	if got := e.records(t); len(got) != 0 {
		t.Fatalf("refused orders wrote %+v", got)
	}
	// The id is still free: a valid body under it is accepted.
	mustPost(t, s.base, valid(func(map[string]any) {}))
}
