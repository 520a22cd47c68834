package stock

import (
	"strings"
	"testing"

	"backinstock/topics/events"
)

func TestApply(t *testing.T) {
	armed0 := Initial()
	tests := []struct {
		name        string
		cur         State
		quantity    int64
		min         int64
		wantRestock bool
		wantEpisode int64
		wantArmed   bool
	}{
		{"new sku 0 to 5 restocks", armed0, 5, 1, true, 1, false},
		{"5 to 7 does not", State{Quantity: 5, Episode: 1}, 7, 1, false, 1, false},
		{"3 to 0 arms", State{Quantity: 3, Episode: 1}, 0, 1, false, 1, true},
		{"0 to 2 after sell-out is a new episode", State{Quantity: 0, Episode: 1, Armed: true}, 2, 1, true, 2, false},
		{"0 to 0 stays armed", State{Quantity: 0, Episode: 4, Armed: true}, 0, 1, false, 4, true},
		{"below minimum stays armed", State{Quantity: 0, Episode: 1, Armed: true}, 2, 3, false, 1, true},
		{"reaching minimum while armed restocks", State{Quantity: 2, Episode: 1, Armed: true}, 3, 3, true, 2, false},
		{"never sold out does not restock at minimum", State{Quantity: 1, Episode: 2}, 4, 3, false, 2, false},
		{"minimum 0 behaves as 1", State{Quantity: 0, Armed: true}, 1, 0, true, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Apply(tt.cur, tt.quantity, tt.min)
			if got.Restock != tt.wantRestock || got.Next.Episode != tt.wantEpisode || got.Next.Armed != tt.wantArmed || got.Next.Quantity != tt.quantity || got.Previous != tt.cur.Quantity {
				t.Fatalf("Apply(%+v, %d, %d) = %+v; want restock=%v episode=%d armed=%v", tt.cur, tt.quantity, tt.min, got, tt.wantRestock, tt.wantEpisode, tt.wantArmed)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	r := Rules{Regions: []string{"us-east-1", "eu-west-1"}}
	ok := Update{SKU: "sku-1", Region: "us-east-1", Quantity: 5}
	tests := []struct {
		name      string
		mutate    func(u *Update)
		wantField string // "" = valid
	}{
		{"valid", func(*Update) {}, ""},
		{"zero is valid", func(u *Update) { u.Quantity = 0 }, ""},
		{"empty sku", func(u *Update) { u.SKU = "" }, "sku"},
		{"sku with a dot", func(u *Update) { u.SKU = "a.b" }, "sku"},
		{"sku with a pipe", func(u *Update) { u.SKU = "a|b" }, "sku"},
		{"missing region", func(u *Update) { u.Region = "" }, "region"},
		{"unknown region", func(u *Update) { u.Region = "mars-1" }, "region"},
		{"negative quantity", func(u *Update) { u.Quantity = -1 }, "quantity"},
		{"huge quantity", func(u *Update) { u.Quantity = events.MaxQuantity + 1 }, "quantity"},
		{"product without title", func(u *Update) { u.Product = &events.Product{URL: "https://x.example"} }, "product.title"},
		{"product with a bad price", func(u *Update) { u.Product = &events.Product{Title: "t", Price: "1,5"} }, "product.price"},
		{"valid product", func(u *Update) { u.Product = &events.Product{Title: "t", Price: "19.99"} }, ""},
		{"bad delivery mode", func(u *Update) { u.Delivery = &events.Delivery{Mode: "some"} }, "delivery.mode"},
		{"valid delivery", func(u *Update) { u.Delivery = &events.Delivery{Mode: "stock_aware", PerUnit: 2} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := ok
			tt.mutate(&u)
			err := r.Check("", u)
			if tt.wantField == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			fe, isFE := err.(*FieldError)
			if !isFE || fe.Field != tt.wantField {
				t.Fatalf("got %v, want a problem with %s", err, tt.wantField)
			}
			if !strings.HasPrefix(fe.Error(), tt.wantField+": ") {
				t.Fatalf("message %q does not name the field", fe.Error())
			}
		})
	}
}
