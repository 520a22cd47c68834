package devices_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"backinstock/services/gateway/internal/devices"
	"backinstock/services/gateway/internal/gatewaytest"
	"backinstock/services/gateway/internal/providertest"
	"backinstock/shared/testenv"
)

// TestRemove against the stand-in, every request and answer held to the
// wishlist API's OpenAPI document (the route the wishlist service serves).
func TestRemove(t *testing.T) {
	wl := providertest.NewWishlist(t)
	contract := &http.Client{Timeout: 5 * time.Second, Transport: &testenv.Contract{Doc: "../../../wishlist/openapi.yaml"}}
	c := devices.New(devices.Config{URL: wl.URL + "/", Token: wl.Token, Timeout: 5 * time.Second}, devices.WithHTTPClient(contract))
	ctx := context.Background()
	phone := gatewaytest.FCMDevice("phone")
	wl.Register("u1", "phone", phone.TokenSHA256())

	if got, err := c.Remove(ctx, "u1", phone); err != nil || got != devices.Removed {
		t.Fatalf("remove: %q, %v", got, err)
	}
	if wl.Has("u1", "phone") {
		t.Fatal("still there")
	}
	// Idempotent: removing it again is a 204 too.
	if got, err := c.Remove(ctx, "u1", phone); err != nil || got != devices.Removed {
		t.Errorf("again: %q, %v", got, err)
	}
	// Re-registered with a new token since the push that found the old
	// one dead: the wishlist keeps it (412).
	wl.Register("u1", "phone", gatewaytest.FCMDevice("phone-new").TokenSHA256())
	if got, err := c.Remove(ctx, "u1", phone); err != nil || got != devices.Kept {
		t.Errorf("re-registered: %q, %v", got, err)
	}
	if !wl.Has("u1", "phone") {
		t.Error("the re-registered device was removed")
	}
	rs := wl.Removals()
	if rs[0].UserID != "u1" || rs[0].DeviceID != "phone" || rs[0].TokenSHA256 != phone.TokenSHA256() {
		t.Errorf("request %+v", rs[0])
	}

	wrong := devices.New(devices.Config{URL: wl.URL, Token: "nope", Timeout: 5 * time.Second}, devices.WithHTTPClient(contract))
	if _, err := wrong.Remove(ctx, "u1", phone); !errors.Is(err, devices.ErrRefused) || !strings.Contains(err.Error(), "401") {
		t.Errorf("wrong token: %v", err)
	}
	wl.Down(true)
	if _, err := c.Remove(ctx, "u1", phone); !errors.Is(err, devices.ErrRefused) {
		t.Errorf("down: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	err := devices.Config{URL: "wishlist:8081", Timeout: 0}.Validate()
	for _, want := range []string{"WISHLIST_API_URL", "WISHLIST_API_TOKEN", "WISHLIST_API_TIMEOUT"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %s", err, want)
		}
	}
	if err := (devices.Config{URL: "http://wishlist:8081", Token: "t", Timeout: time.Second}).Validate(); err != nil {
		t.Error(err)
	}
}
