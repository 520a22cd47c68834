package unsubscribe

import (
	"errors"
	"strings"
	"testing"
)

const (
	secretA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	secretB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

func TestParseKeys(t *testing.T) {
	tests := []struct {
		name, in string
		ids      []string
		err      string
	}{
		{"one", "k1:" + secretA, []string{"k1"}, ""},
		{"two, first signs", "k2:" + secretB + ", k1:" + secretA, []string{"k2", "k1"}, ""},
		{"empty", " ", nil, "no keys"},
		{"no colon", "k1", nil, "key 1: want kid:secret"},
		{"bad id", "k.1:" + secretA, nil, `key 1: id "k.1" must match`},
		{"short secret", "k1:short", nil, "key 1 (k1): secret must be at least 32 bytes, got 5"},
		{"duplicate id", "k1:" + secretA + ",k1:" + secretB, nil, `key 2: id "k1" listed twice`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ks, err := ParseKeys(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), secretA) || strings.Contains(err.Error(), secretB) {
					t.Fatalf("error shows a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range ks {
				ids = append(ids, k.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tt.ids, ",") {
				t.Fatalf("ids = %v, want %v", ids, tt.ids)
			}
		})
	}
}

func TestSignVerify(t *testing.T) {
	old, _ := ParseKeys("old:" + secretA)
	rotated, _ := ParseKeys("new:" + secretB + ",old:" + secretA)
	onlyNew, _ := ParseKeys("new:" + secretB)
	forged, _ := ParseKeys("old:" + secretB) // the right kid, the wrong secret

	tokOld, err := old.Sign("alice", "email")
	if err != nil {
		t.Fatal(err)
	}
	tokNew, _ := rotated.Sign("bob", ScopeAll)
	if !strings.HasPrefix(tokNew, "v1.new.bob.all.") {
		t.Fatalf("token %q not signed by the first key", tokNew)
	}
	tokForged, _ := forged.Sign("alice", "email")
	swapped := strings.Replace(tokOld, ".alice.", ".mallory.", 1)
	widened := strings.Replace(tokOld, ".email.", ".all.", 1)

	tests := []struct {
		name  string
		keys  Keys
		token string
		want  Claim
		err   error
	}{
		{"own key", old, tokOld, Claim{UserID: "alice", Scope: "email", KeyID: "old"}, nil},
		{"old token after rotation", rotated, tokOld, Claim{UserID: "alice", Scope: "email", KeyID: "old"}, nil},
		{"new token", rotated, tokNew, Claim{UserID: "bob", Scope: ScopeAll, KeyID: "new"}, nil},
		{"old key retired", onlyNew, tokOld, Claim{}, ErrUnknownKey},
		{"forged with another secret", old, tokForged, Claim{}, ErrBadSignature},
		{"user swapped", old, swapped, Claim{}, ErrBadSignature},
		{"scope widened", old, widened, Claim{}, ErrBadSignature},
		{"empty", old, "", Claim{}, ErrMalformed},
		{"wrong version", old, "v2" + tokOld[2:], Claim{}, ErrMalformed},
		{"extra part", old, tokOld + ".x", Claim{}, ErrMalformed},
		{"bad scope", old, "v1.old.alice.fax." + strings.Repeat("A", 43), Claim{}, ErrMalformed},
		{"bad user", old, "v1.old.a*b.all." + strings.Repeat("A", 43), Claim{}, ErrMalformed},
		{"short mac", old, "v1.old.alice.all.AAAA", Claim{}, ErrMalformed},
		{"mac not base64url", old, "v1.old.alice.all." + strings.Repeat("+", 43), Claim{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.keys.Verify(tt.token)
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("Verify = %+v, %v; want %+v, %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestSignRefuses(t *testing.T) {
	ks, _ := ParseKeys("k:" + secretA)
	for _, c := range []struct{ user, scope string }{{"a.b", "all"}, {"alice", "fax"}, {"", "all"}} {
		if tok, err := ks.Sign(c.user, c.scope); err == nil {
			t.Errorf("Sign(%q, %q) = %q, want an error", c.user, c.scope, tok)
		}
	}
	if _, err := Keys(nil).Sign("alice", "all"); err == nil {
		t.Error("Sign without keys: want an error")
	}
}

func TestURL(t *testing.T) {
	ks, _ := ParseKeys("k:" + secretA)
	u, err := ks.URL("https://shop.example/wishlist/", "alice", "email")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, "https://shop.example/wishlist/v1/unsubscribe?token=v1.k.alice.email.") {
		t.Fatalf("URL = %s", u)
	}
}
