// Package demo serves the local stack's live page: pick a demo user and watch
// their notifications arrive over the NATS websocket, restock a SKU with a
// button, and follow counters per stage. The server holds the API token and
// calls the services for the page, so the browser only ever holds a
// user-scoped edge credential.
package demo

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"backinstock/shared/httpapi"
)

//go:embed static
var static embed.FS

// Config is what the page's server needs to reach.
type Config struct {
	InventoryURL string
	WishlistURL  string
	// TokenURLs maps a region to the URL of its notifier's edge-token endpoint.
	TokenURLs map[string]string
	NATSWSURL string
	APIToken  string
	Regions   []string
	Channels  []string
	// MetricsURLs are scraped for the stage counters.
	MetricsURLs []string
	// MailpitURL is the local Mailpit's web UI, where the gateways' emails
	// land; the page links to it.
	MailpitURL string
	Data       Data
}

// Server is the page's HTTP handler.
type Server struct {
	cfg    Config
	log    *zap.Logger
	client *http.Client
	mux    *http.ServeMux
}

// New builds the handler.
func New(cfg Config, log *zap.Logger) *Server {
	s := &Server{cfg: cfg, log: log, client: &http.Client{Timeout: 10 * time.Second}, mux: http.NewServeMux()}
	sub, _ := fs.Sub(static, "static")
	s.mux.Handle("GET /", http.FileServerFS(sub))
	s.mux.HandleFunc("GET /api/config", s.config)
	s.mux.HandleFunc("GET /api/users", s.users)
	s.mux.HandleFunc("GET /api/users/{user}/wishlist", s.wishlist)
	s.mux.HandleFunc("GET /api/skus", s.skus)
	s.mux.HandleFunc("POST /api/restock", s.restock)
	s.mux.HandleFunc("POST /api/token", s.token)
	s.mux.HandleFunc("GET /api/stats", s.stats)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) config(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, map[string]any{"regions": s.cfg.Regions, "channels": s.cfg.Channels, "ws_url": s.cfg.NATSWSURL,
		"mailpit_url": s.cfg.MailpitURL})
}

func (s *Server) users(w http.ResponseWriter, _ *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, s.cfg.Data.Showcase())
}

func (s *Server) wishlist(w http.ResponseWriter, r *http.Request) {
	s.forward(w, r.Context(), http.MethodGet, s.cfg.WishlistURL+"/v1/users/"+r.PathValue("user")+"/wishlist", nil)
}

func (s *Server) skus(w http.ResponseWriter, r *http.Request) {
	type row struct {
		SKU         string `json:"sku"`
		Title       string `json:"title"`
		Region      string `json:"region"`
		Wishlisters int64  `json:"wishlisters"`
	}
	var rows []row
	for _, p := range s.cfg.Data.Products {
		// One call per SKU answers every region's count.
		var n struct {
			Counts map[string]int64 `json:"counts"`
		}
		_ = s.call(r.Context(), http.MethodGet, s.cfg.WishlistURL+"/v1/skus/"+p.SKU+"/wishlisters", nil, &n)
		for _, region := range s.cfg.Regions {
			if c := n.Counts[region]; c > 0 { // a region nobody wishlisted the SKU in has nothing to show
				rows = append(rows, row{SKU: p.SKU, Title: p.Title, Region: region, Wishlisters: c})
			}
		}
	}
	httpapi.WriteJSON(w, http.StatusOK, rows)
}

// restock sets the level to 0 and then to the asked quantity, so the button
// always makes a sold-out → available transition, whatever the level was.
func (s *Server) restock(w http.ResponseWriter, r *http.Request) {
	var req struct {
		SKU      string `json:"sku"`
		Region   string `json:"region"`
		Quantity int64  `json:"quantity"`
	}
	if err := httpapi.Decode(w, r, 4<<10, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	if req.Quantity < 1 {
		httpapi.WriteError(w, httpapi.Invalid("quantity: must be at least 1"))
		return
	}
	p := s.cfg.Data.Product(req.SKU)
	body := func(q int64) map[string]any {
		return map[string]any{"region": req.Region, "quantity": q, "product": map[string]string{"title": p.Title, "url": p.URL, "price": p.Price}}
	}
	url := s.cfg.InventoryURL + "/v1/stock/" + req.SKU
	if err := s.call(r.Context(), http.MethodPut, url, body(0), nil); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	s.forward(w, r.Context(), http.MethodPut, url, body(req.Quantity))
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	var req struct {
		UserID string `json:"user_id"`
	}
	if err := httpapi.Decode(w, r, 4<<10, &req); err != nil {
		httpapi.WriteError(w, err)
		return
	}
	region := s.cfg.Data.RegionOf(req.UserID)
	url, ok := s.cfg.TokenURLs[region]
	if !ok {
		httpapi.WriteError(w, httpapi.Invalid("user_id: %q is not a demo user", req.UserID))
		return
	}
	s.forward(w, r.Context(), http.MethodPost, url, map[string]string{"user_id": req.UserID})
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request) {
	httpapi.WriteJSON(w, http.StatusOK, Scrape(r.Context(), s.client, s.cfg.MetricsURLs))
}

// call sends an authenticated JSON request and decodes a 2xx answer into out.
func (s *Server) call(ctx context.Context, method, url string, in, out any) error {
	status, body, err := s.do(ctx, method, url, in)
	if err != nil {
		return err
	}
	if status/100 != 2 {
		return httpapi.Errorf(http.StatusBadGateway, "upstream", "%s %s: %d %s", method, url, status, strings.TrimSpace(string(body)))
	}
	if out != nil {
		return json.Unmarshal(body, out)
	}
	return nil
}

// forward relays the upstream answer as is.
func (s *Server) forward(w http.ResponseWriter, ctx context.Context, method, url string, in any) {
	status, body, err := s.do(ctx, method, url, in)
	if err != nil {
		httpapi.WriteError(w, httpapi.Errorf(http.StatusBadGateway, "upstream", "%v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) do(ctx context.Context, method, url string, in any) (int, []byte, error) {
	var rd io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.cfg.APIToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, body, err
}
