package providertest

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"backinstock/topics/events"
)

// WebPush is a local push service (RFC 8030) that checks what a real one
// checks and reads what a browser would:
//
//   - POST /push/{id} to a subscription it made (Subscribe), else 404;
//   - Authorization: vapid t=<JWT>, k=<key> (RFC 8292): the JWT is ES256
//     and verifies with k, k is the application server key the
//     subscription was made with (VAPIDKey), aud is the endpoint's origin,
//     exp in the future and at most 24 hours away, sub a mailto: or
//     https: contact; else 401 (bad token) or 403 (another key);
//   - TTL required; Urgency and Topic (≤ 32 base64url characters) well
//     formed; Content-Encoding aes128gcm; a body of at most 4,096 bytes
//     (else 413);
//   - the body DECRYPTED with the subscription's private key and auth
//     secret, as the browser does (RFC 8291), and kept for the test;
//   - 201 Created with a Location, or 410 Gone for the subscriptions it
//     is told are gone, or the failures it is told to give.
type WebPush struct {
	// URL is the push service's origin.
	URL string
	// VAPIDKey is the application server's public key (base64url) the
	// subscriptions are made with; "" accepts any key.
	VAPIDKey string

	mu    sync.Mutex
	subs  map[string]*subscription
	msgs  []WebPushMessage
	reqs  int
	fail  []WebPushReply
	gone  map[string]bool
	count int
}

type subscription struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// WebPushMessage is one message the push service accepted, decrypted.
type WebPushMessage struct {
	SubscriptionID string
	// Plaintext is what the service worker's event.data holds.
	Plaintext            []byte
	TTL                  int
	Urgency, Topic       string
	Subject              string
	RecordSize, BodySize int
	Location             string
}

// WebPushReply is a failure the push service gives instead of accepting
// (503 or 429 with RetryAfter, 413).
type WebPushReply struct {
	Status     int
	RetryAfter string
}

// NewWebPush starts the push service.
func NewWebPush(tb testing.TB, vapidKey string) *WebPush {
	tb.Helper()
	s := &WebPush{VAPIDKey: vapidKey, subs: map[string]*subscription{}, gone: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /push/{id}", s.push)
	s.URL = serveLocal(tb, mux)
	return s
}

// Subscribe makes a subscription as a browser does (a P-256 key pair and
// a 16-byte auth secret) and returns it as the device id's webpush
// device.
func (s *WebPush) Subscribe(tb testing.TB, deviceID string) events.Device {
	tb.Helper()
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	auth := make([]byte, 16)
	_, _ = rand.Read(auth)
	var b [12]byte
	_, _ = rand.Read(b[:])
	id := base64.RawURLEncoding.EncodeToString(b[:])
	s.mu.Lock()
	s.subs[id] = &subscription{key: k, auth: auth}
	s.mu.Unlock()
	return events.Device{ID: deviceID, Kind: events.DeviceWebPush, Endpoint: s.URL + "/push/" + id,
		P256dh: base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()), Auth: base64.RawURLEncoding.EncodeToString(auth)}
}

// SubscriptionID is the push service's id of d (the endpoint's last
// segment).
func SubscriptionID(d events.Device) string {
	return d.Endpoint[strings.LastIndexByte(d.Endpoint, '/')+1:]
}

// Unsubscribe makes the subscription of d answer 410 Gone, as after the
// user revoked the permission.
func (s *WebPush) Unsubscribe(d events.Device) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone[SubscriptionID(d)] = true
}

// Fail makes the next valid pushes get replies, one each.
func (s *WebPush) Fail(replies ...WebPushReply) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = append(s.fail, replies...)
}

// Messages returns the accepted messages in arrival order.
func (s *WebPush) Messages() []WebPushMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]WebPushMessage(nil), s.msgs...)
}

// Requests is the number of pushes that passed VAPID, accepted or not.
func (s *WebPush) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reqs
}

var topicRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// webPushMaxBody is what push services take (RFC 8030 7.2 requires 4,096
// bytes of payload at least; FCM and Mozilla take no more).
const webPushMaxBody = 4096

func (s *WebPush) push(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	sub, gone := s.subs[id], s.gone[id]
	s.mu.Unlock()
	if sub == nil {
		http.Error(w, "no such subscription", http.StatusNotFound)
		return
	}
	subject, status, err := s.checkVAPID(r)
	if err != nil {
		http.Error(w, err.Error(), status)
		return
	}
	ttl, err := strconv.Atoi(r.Header.Get("TTL"))
	if err != nil || ttl < 0 {
		http.Error(w, "TTL header required (RFC 8030 5.2)", http.StatusBadRequest)
		return
	}
	urgency, topic := r.Header.Get("Urgency"), r.Header.Get("Topic")
	if urgency != "" && !slices.Contains([]string{"very-low", "low", "normal", "high"}, urgency) {
		http.Error(w, "bad Urgency "+urgency, http.StatusBadRequest)
		return
	}
	if topic != "" && !topicRE.MatchString(topic) {
		http.Error(w, "Topic must be at most 32 base64url characters (RFC 8030 5.4)", http.StatusBadRequest)
		return
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "aes128gcm" {
		http.Error(w, "Content-Encoding must be aes128gcm (RFC 8291), got "+ce, http.StatusUnsupportedMediaType)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, webPushMaxBody+1))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if len(body) > webPushMaxBody {
		http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
		return
	}
	plain, rs, err := decrypt(sub, body)
	if err != nil {
		// A real push service cannot tell; the browser drops the message.
		// Here it is the test's failure to see.
		http.Error(w, "the browser could not decrypt this: "+err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs++
	if len(s.fail) > 0 {
		f := s.fail[0]
		s.fail = s.fail[1:]
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		http.Error(w, "told to fail", f.Status)
		return
	}
	if gone {
		http.Error(w, "push subscription has unsubscribed or expired", http.StatusGone)
		return
	}
	s.count++
	loc := s.URL + "/message/" + strconv.Itoa(s.count)
	s.msgs = append(s.msgs, WebPushMessage{SubscriptionID: id, Plaintext: plain, TTL: ttl, Urgency: urgency, Topic: topic,
		Subject: subject, RecordSize: rs, BodySize: len(body), Location: loc})
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusCreated)
}

// checkVAPID verifies the Authorization header (RFC 8292) and returns the
// JWT's sub.
func (s *WebPush) checkVAPID(r *http.Request) (string, int, error) {
	v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "vapid ")
	if !ok {
		return "", http.StatusUnauthorized, errors.New("authorization scheme must be vapid")
	}
	var t, k string
	for _, p := range strings.Split(v, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch name {
		case "t":
			t = val
		case "k":
			k = val
		}
	}
	keyBytes, err := base64.RawURLEncoding.DecodeString(k)
	if err != nil {
		return "", http.StatusUnauthorized, fmt.Errorf("k: %w", err)
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), keyBytes)
	if err != nil {
		return "", http.StatusUnauthorized, fmt.Errorf("k is not a P-256 key: %w", err)
	}
	parts := strings.Split(t, ".")
	if len(parts) != 3 {
		return "", http.StatusUnauthorized, errors.New("t is not a JWT")
	}
	var hdr struct{ Alg, Typ string }
	if err := decodeJWTPart(parts[0], &hdr); err != nil || hdr.Alg != "ES256" {
		return "", http.StatusUnauthorized, fmt.Errorf("JWT header alg %q, want ES256 (%v)", hdr.Alg, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return "", http.StatusUnauthorized, errors.New("ES256 signature must be 64 bytes r||s")
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if !ecdsa.Verify(pub, h[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return "", http.StatusUnauthorized, errors.New("VAPID JWT signature does not verify with k")
	}
	var c struct {
		Aud string `json:"aud"`
		Exp int64  `json:"exp"`
		Sub string `json:"sub"`
	}
	if err := decodeJWTPart(parts[1], &c); err != nil {
		return "", http.StatusUnauthorized, err
	}
	origin := (&url.URL{Scheme: "http", Host: r.Host}).String()
	now := time.Now().Unix()
	switch {
	case c.Aud != origin:
		return "", http.StatusUnauthorized, fmt.Errorf("aud %q is not the push service's origin %q", c.Aud, origin)
	case c.Exp <= now || c.Exp > now+24*3600:
		return "", http.StatusUnauthorized, fmt.Errorf("exp %d: expired or more than 24 hours away", c.Exp)
	case !strings.HasPrefix(c.Sub, "mailto:") && !strings.HasPrefix(c.Sub, "https://"),
		strings.HasPrefix(c.Sub, "mailto:mailto:"):
		return "", http.StatusUnauthorized, fmt.Errorf("sub %q is not a mailto: or https: contact", c.Sub)
	}
	if s.VAPIDKey != "" && strings.TrimRight(s.VAPIDKey, "=") != k {
		return "", http.StatusForbidden, errors.New("the subscription was made with another application server key")
	}
	return c.Sub, 0, nil
}

// decrypt reads an aes128gcm body (RFC 8188) with the Web Push key
// derivation (RFC 8291 3.3, 3.4) as the browser holding sub does.
func decrypt(sub *subscription, body []byte) ([]byte, int, error) {
	if len(body) < 21 {
		return nil, 0, errors.New("no aes128gcm header")
	}
	salt, rs, idlen := body[:16], int(binary.BigEndian.Uint32(body[16:20])), int(body[20])
	if rs < 18 || len(body) < 21+idlen {
		return nil, 0, fmt.Errorf("record size %d, key id %d bytes", rs, idlen)
	}
	asPublic, data := body[21:21+idlen], body[21+idlen:]
	as, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, 0, fmt.Errorf("key id is not the sender's P-256 key: %w", err)
	}
	secret, err := sub.key.ECDH(as)
	if err != nil {
		return nil, 0, err
	}
	prkKey, _ := hkdf.Extract(sha256.New, secret, sub.auth)
	info := append(append([]byte("WebPush: info\x00"), sub.key.PublicKey().Bytes()...), asPublic...)
	ikm, _ := hkdf.Expand(sha256.New, prkKey, string(info), 32)
	prk, _ := hkdf.Extract(sha256.New, ikm, salt)
	cek, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: aes128gcm\x00", 16)
	nonce, _ := hkdf.Expand(sha256.New, prk, "Content-Encoding: nonce\x00", 12)
	block, _ := aes.NewCipher(cek)
	gcm, _ := cipher.NewGCM(block)
	var out []byte
	for seq := uint64(0); len(data) > 0; seq++ {
		n := min(rs, len(data))
		rec := data[:n]
		data = data[n:]
		iv := slices.Clone(nonce)
		for i := range 8 {
			iv[11-i] ^= byte(seq >> (8 * i))
		}
		plain, err := gcm.Open(nil, iv, rec, nil)
		if err != nil {
			return nil, 0, fmt.Errorf("record %d: %w", seq, err)
		}
		end := len(plain)
		for end > 0 && plain[end-1] == 0 {
			end--
		}
		if end == 0 {
			return nil, 0, fmt.Errorf("record %d has no delimiter", seq)
		}
		last := len(data) == 0
		if d := plain[end-1]; (last && d != 2) || (!last && d != 1) {
			return nil, 0, fmt.Errorf("record %d: delimiter %d", seq, d)
		}
		out = append(out, plain[:end-1]...)
	}
	return out, rs, nil
}
