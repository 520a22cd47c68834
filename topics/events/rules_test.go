package events

import (
	"net/url"
	"testing"
)

// FuzzPlainURL checks the shortcut checkURL takes: whatever plainURL lets
// through, url.Parse accepts, with the same host.
func FuzzPlainURL(f *testing.F) {
	for _, s := range []string{
		"https://shop.example/p/SKU-1?utm=x&b=2#top",
		"http://a/",
		"https://shop.example:8443/p",
		"https://user@shop.example/p",
		"https://shop.example/a%20b",
		"https://shop.example/a%zz",
		"https://[::1]/p",
		"https://shop.example/p;v=1,2/(x)*'!$~@:",
		"https://xn--bcher-kva.example/p",
		"https://shop_example/p",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		rest, host, ok := httpParts(s)
		if !ok || host == "" || !plainURL(host, rest) {
			return
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("plainURL let %q through; url.Parse: %v", s, err)
		}
		if u.Host != host {
			t.Fatalf("plainURL saw host %q in %q; url.Parse %q", host, s, u.Host)
		}
	})
}

func TestPlainURL(t *testing.T) {
	for s, want := range map[string]bool{
		"https://shop.example/p/SKU-1?utm=x&b=2#top": true,
		"https://shop.example:8443/p":                false, // a port: url.Parse checks it
		"https://shop.example/a%20b":                 false, // an escape: url.Parse checks it
		"https://user@shop.example/p":                false,
		"https://shop_example/p":                     false,
	} {
		rest, host, _ := httpParts(s)
		if got := plainURL(host, rest); got != want {
			t.Errorf("plainURL(%q) = %v, want %v", s, got, want)
		}
	}
}
