package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"backinstock/topics/events"
)

// Product is a demo catalogue item.
type Product struct {
	SKU, Title, URL, Price string
}

// Data describes the demo's users and wishlists. It is generated, not
// stored, so every run of the stack and every test agrees on it.
type Data struct {
	Products []Product
	Users    int
	Regions  []string
	Channels []string
}

// DefaultData is a few thousand users across the regions and channels.
func DefaultData(regions, channels []string) Data {
	titles := []string{"Switch OLED", "PS5 Slim", "AirPods Pro", "Kindle Paperwhite", "Steam Deck", "Lego Titanic",
		"Dyson V15", "Stanley Quencher", "Pokemon Booster Box", "Nike Dunk Low", "Instant Pot Duo", "Yeti Rambler"}
	ps := make([]Product, len(titles))
	for i, t := range titles {
		sku := "sku-" + strings.ToLower(strings.ReplaceAll(t, " ", "-"))
		ps[i] = Product{SKU: sku, Title: t, URL: "https://shop.example/p/" + sku, Price: fmt.Sprintf("%d.99", 19+i*10)}
	}
	return Data{Products: ps, Users: 3000, Regions: regions, Channels: channels}
}

// Entry is one wishlist line, as the wishlist import takes it.
type Entry struct {
	UserID   string   `json:"user_id"`
	SKU      string   `json:"sku"`
	Region   string   `json:"region"`
	Channels []string `json:"channels"`
}

// UserID is the id of the i-th demo user.
func UserID(i int) string { return fmt.Sprintf("user-%05d", i) }

func userIndex(id string) (int, bool) {
	n, err := strconv.Atoi(strings.TrimPrefix(id, "user-"))
	return n, err == nil && strings.HasPrefix(id, "user-")
}

// RegionOf is the demo user's region ("" for strangers).
func (d Data) RegionOf(user string) string {
	i, ok := userIndex(user)
	if !ok || i < 0 || i >= d.Users || len(d.Regions) == 0 {
		return ""
	}
	return d.Regions[i%len(d.Regions)]
}

// channelsOf: everyone has app; every second user web, every third email, every fifth sms.
func (d Data) channelsOf(i int) []string {
	var out []string
	for k, ch := range d.Channels {
		if k == 0 || i%(k+1) == 0 {
			out = append(out, ch)
		}
	}
	return out
}

// Entries yields every demo wishlist entry: one to three products per user.
func (d Data) Entries(yield func(Entry) error) error {
	p := len(d.Products)
	for i := range d.Users {
		picks := []int{(i * 7) % p}
		if i%2 == 0 {
			picks = append(picks, (i*13+3)%p)
		}
		if i%3 == 0 {
			picks = append(picks, (i*5+1)%p)
		}
		seen := map[int]bool{}
		for _, k := range picks {
			if seen[k] {
				continue
			}
			seen[k] = true
			if err := yield(Entry{UserID: UserID(i), SKU: d.Products[k].SKU, Region: d.RegionOf(UserID(i)), Channels: d.channelsOf(i)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ShowUser is a user the page offers in its picker.
type ShowUser struct {
	UserID string `json:"user_id"`
	Region string `json:"region"`
}

// Showcase is the first users of each region, for the page's picker.
func (d Data) Showcase() []ShowUser {
	var out []ShowUser
	for i := 0; i < min(d.Users, 30); i++ {
		out = append(out, ShowUser{UserID: UserID(i), Region: d.RegionOf(UserID(i))})
	}
	return out
}

// Product looks a SKU up (zero Product for unknown SKUs).
func (d Data) Product(sku string) Product {
	for _, p := range d.Products {
		if p.SKU == sku {
			return p
		}
	}
	return Product{SKU: sku}
}

// EmailOf is the demo user's email address, on a reserved test domain
// (RFC 2606): the mail only ever reaches the local Mailpit.
func EmailOf(user string) string { return user + "@demo.test" }

// EmailUsers are the demo users with the email channel.
func (d Data) EmailUsers() []string {
	var out []string
	for i := range d.Users {
		if slices.Contains(d.channelsOf(i), events.ChannelEmail) {
			out = append(out, UserID(i))
		}
	}
	return out
}

// SeedContacts gives every email user an address in their preferences
// (PUT replaces them whole; demo users have no others), so the gateways
// have somewhere to send. The writes go eight at a time: each waits for
// the changelog's Kafka acknowledgement.
func SeedContacts(ctx context.Context, client *http.Client, wishlistURL, token string, d Data) (int, error) {
	users := d.EmailUsers()
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, u := range users {
		g.Go(func() error {
			body := `{"contacts":{"email":"` + EmailOf(u) + `"}}`
			req, err := http.NewRequestWithContext(ctx, http.MethodPut, wishlistURL+"/v1/users/"+u+"/preferences", strings.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				return fmt.Errorf("seed contacts of %s: %w", u, err)
			}
			defer resp.Body.Close()
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("seed contacts of %s: %d %s", u, resp.StatusCode, msg)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return len(users), nil
}

// Seed loads every entry through the wishlist service's bulk import, as NDJSON.
func Seed(ctx context.Context, client *http.Client, wishlistURL, token string, d Data) (int, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	n := 0
	if err := d.Entries(func(e Entry) error { n++; return enc.Encode(e) }); err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, wishlistURL+"/v1/wishlists:import", &buf)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("seed demo wishlists: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("seed demo wishlists: %d %s", resp.StatusCode, body)
	}
	return n, nil
}
