package providertest

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Wishlist stands in for the wishlist API's device removal route
// (services/wishlist/openapi.yaml), which the gateway removes dead push
// devices through: DELETE /v1/users/{user_id}/devices/{device_id}
// ?token_sha256=<hex>, bearer token required; 204 whether the device was
// there or not, 412 (token_mismatch) when it holds another token than the
// hash says, 422 for a malformed hash. (A stand-in, not the wishlist
// service itself, so the gateway's module does not depend on another
// service's; the devices tests hold it and the client to the OpenAPI
// document.)
type Wishlist struct {
	// URL is the base URL (WISHLIST_API_URL); Token the bearer token.
	URL, Token string

	mu       sync.Mutex
	devices  map[string]string // user/device -> token_sha256
	removals []WishlistRemoval
	down     bool
}

// WishlistRemoval is one authorized DELETE.
type WishlistRemoval struct {
	UserID, DeviceID, TokenSHA256 string
	Status                        int
}

// NewWishlist starts the stand-in.
func NewWishlist(tb testing.TB) *Wishlist {
	tb.Helper()
	wl := &Wishlist{Token: "wishlist-test-token", devices: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("DELETE /v1/users/{user}/devices/{device}", wl.remove)
	wl.URL = serveLocal(tb, mux)
	return wl
}

// Register records a device of user with the hash of its token
// (events.Device.TokenSHA256).
func (wl *Wishlist) Register(user, device, tokenSHA256 string) {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	wl.devices[user+"/"+device] = tokenSHA256
}

// Has reports whether user still has device.
func (wl *Wishlist) Has(user, device string) bool {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	_, ok := wl.devices[user+"/"+device]
	return ok
}

// Down makes every request answer 503 while on.
func (wl *Wishlist) Down(on bool) {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	wl.down = on
}

// Removals returns the authorized DELETEs in arrival order.
func (wl *Wishlist) Removals() []WishlistRemoval {
	wl.mu.Lock()
	defer wl.mu.Unlock()
	return append([]WishlistRemoval(nil), wl.removals...)
}

func (wl *Wishlist) remove(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+wl.Token {
		apiError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong bearer token")
		return
	}
	user, device, fp := r.PathValue("user"), r.PathValue("device"), r.URL.Query().Get("token_sha256")
	if len(fp) != 64 || strings.Trim(fp, "0123456789abcdef") != "" {
		apiError(w, http.StatusUnprocessableEntity, "invalid", "token_sha256 must be 64 lowercase hex digits")
		return
	}
	wl.mu.Lock()
	defer wl.mu.Unlock()
	rm := WishlistRemoval{UserID: user, DeviceID: device, TokenSHA256: fp}
	have, ok := wl.devices[user+"/"+device]
	switch {
	case wl.down:
		rm.Status = http.StatusServiceUnavailable
	case !ok:
		rm.Status = http.StatusNoContent
	case have != fp:
		rm.Status = http.StatusPreconditionFailed
	default:
		delete(wl.devices, user+"/"+device)
		rm.Status = http.StatusNoContent
	}
	wl.removals = append(wl.removals, rm)
	if rm.Status == http.StatusNoContent {
		w.WriteHeader(rm.Status)
		return
	}
	code := map[int]string{http.StatusPreconditionFailed: "token_mismatch", http.StatusServiceUnavailable: "unavailable"}[rm.Status]
	apiError(w, rm.Status, code, "device "+device)
}

// apiError is the backinstock APIs' error body.
func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":{"code":"` + code + `","message":"` + strings.ReplaceAll(msg, `"`, `'`) + `"}}`))
}
