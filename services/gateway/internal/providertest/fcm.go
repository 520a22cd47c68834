package providertest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// FCMScope is the OAuth2 scope the token endpoint requires.
const FCMScope = "https://www.googleapis.com/auth/firebase.messaging"

// FCM is a local server with the shape of Firebase Cloud Messaging's HTTP
// v1 API and of Google's OAuth2 token endpoint:
//
//   - POST /token takes the JWT bearer grant (RFC 7523) a service account
//     makes, verifies the assertion's RS256 signature against the
//     account's public key, its kid, iss, aud (the token URL), scope and
//     lifetime, and issues an access token valid for an hour;
//   - POST /v1/projects/{project}/messages:send wants one of the tokens it
//     issued as the bearer, the project, and a Message with one token
//     target and a notification, at most 4,096 bytes; it answers
//     {"name": …}, or FCM's error JSON for the tokens or the requests it
//     is told to refuse.
type FCM struct {
	// URL is the API's base URL (FCM_BASE_URL); CredentialsFile the
	// service account key whose token_uri is URL/token.
	URL, CredentialsFile string
	ProjectID            string

	key         *rsa.PrivateKey
	keyID       string
	clientEmail string

	mu        sync.Mutex
	issued    map[string]time.Time // access token -> expiry
	exchanges int
	msgs      []FCMMessage
	reqs      int
	gone      map[string]string // token -> FCM error code
	fail      []FCMReply
}

// FCMMessage is one message the stand-in accepted.
type FCMMessage struct {
	Name         string
	Token        string
	Title, Body  string
	Image        string
	Data         map[string]string
	CollapseKey  string
	APNSCollapse string
}

// FCMReply is an error answer the stand-in gives instead of accepting:
// Status 503 (UNAVAILABLE), 429 (QUOTA_EXCEEDED, with RetryAfter), 500
// (INTERNAL), 401.
type FCMReply struct {
	Status     int
	ErrorCode  string
	RetryAfter string
}

// NewFCM starts the stand-in and writes its service account key file
// under the test's temporary directory.
func NewFCM(tb testing.TB) *FCM {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	var kid [20]byte
	_, _ = rand.Read(kid[:])
	f := &FCM{ProjectID: "backinstock-test", key: key, keyID: hex.EncodeToString(kid[:]),
		clientEmail: "gateway@backinstock-test.iam.gserviceaccount.com",
		issued:      map[string]time.Time{}, gone: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/{project}/{op}", f.send)
	f.URL = serveLocal(tb, mux)

	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	sa, _ := json.MarshalIndent(map[string]string{
		"type": "service_account", "project_id": f.ProjectID, "private_key_id": f.keyID,
		"private_key":  string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email": f.clientEmail, "client_id": "1234567890",
		"auth_uri": "https://accounts.google.com/o/oauth2/auth", "token_uri": f.URL + "/token",
	}, "", "  ")
	f.CredentialsFile = filepath.Join(tb.TempDir(), "fcm-service-account.json")
	if err := os.WriteFile(f.CredentialsFile, sa, 0o600); err != nil {
		tb.Fatal(err)
	}
	return f
}

// Unregister makes every send to token answer 404 UNREGISTERED (an app
// uninstalled), or with code "INVALID_ARGUMENT" 400 about message.token
// (a token that never was one).
func (f *FCM) Unregister(token, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if code == "" {
		code = "UNREGISTERED"
	}
	f.gone[token] = code
}

// Fail makes the next valid sends get replies, one each, in order.
func (f *FCM) Fail(replies ...FCMReply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = append(f.fail, replies...)
}

// Messages returns the accepted messages in arrival order.
func (f *FCM) Messages() []FCMMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FCMMessage(nil), f.msgs...)
}

// Requests is the number of authorized send requests, accepted or not.
func (f *FCM) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reqs
}

// Exchanges is the number of access tokens issued.
func (f *FCM) Exchanges() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exchanges
}

// oauthError answers as Google's token endpoint does.
func oauthError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (f *FCM) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, "invalid_request", err.Error())
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(w, "unsupported_grant_type", "grant_type "+g)
		return
	}
	if err := f.verifyAssertion(r.PostForm.Get("assertion")); err != nil {
		oauthError(w, "invalid_grant", err.Error())
		return
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	tok := "ya29.test-" + base64.RawURLEncoding.EncodeToString(b[:])
	f.mu.Lock()
	f.issued[tok] = time.Now().Add(time.Hour)
	f.exchanges++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3599})
}

// verifyAssertion checks the service account's JWT as Google does.
func (f *FCM) verifyAssertion(assertion string) error {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return fmt.Errorf("assertion is not a JWS compact serialization")
	}
	var hdr struct {
		Alg, Typ, Kid string
	}
	if err := decodeJWTPart(parts[0], &hdr); err != nil {
		return err
	}
	if hdr.Alg != "RS256" || hdr.Kid != f.keyID {
		return fmt.Errorf("header alg %q kid %q, want RS256 and the key id %s", hdr.Alg, hdr.Kid, f.keyID)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature: %w", err)
	}
	h := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(&f.key.PublicKey, crypto.SHA256, h[:], sig); err != nil {
		return fmt.Errorf("invalid JWT signature: %w", err)
	}
	var c map[string]any
	if err := decodeJWTPart(parts[1], &c); err != nil {
		return err
	}
	iat, _ := c["iat"].(float64)
	exp, _ := c["exp"].(float64)
	now := float64(time.Now().Unix())
	switch {
	case c["iss"] != f.clientEmail:
		return fmt.Errorf("iss %v is not the service account", c["iss"])
	case c["aud"] != f.URL+"/token":
		return fmt.Errorf("aud %v is not the token URL", c["aud"])
	case !strings.Contains(" "+fmt.Sprint(c["scope"])+" ", " "+FCMScope+" "):
		return fmt.Errorf("scope %v lacks %s", c["scope"], FCMScope)
	case exp <= now || iat > now+300 || exp-iat > 3600:
		return fmt.Errorf("iat %v exp %v: expired or longer than an hour", iat, exp)
	}
	return nil
}

func decodeJWTPart(s string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("JWT part: %w", err)
	}
	return json.Unmarshal(b, v)
}

// fcmError writes FCM's error JSON.
func fcmError(w http.ResponseWriter, status int, rpcStatus, errorCode, msg string, details ...map[string]any) {
	if errorCode != "" {
		details = append([]map[string]any{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": errorCode}}, details...)
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"code": status, "message": msg, "status": rpcStatus, "details": details}})
}

// fcmMaxPayload is FCM's limit on a message's payload.
const fcmMaxPayload = 4096

func (f *FCM) send(w http.ResponseWriter, r *http.Request) {
	auth, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	f.mu.Lock()
	exp, known := f.issued[auth]
	f.mu.Unlock()
	if !ok || !known || time.Now().After(exp) {
		fcmError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials. Expected OAuth 2 access token.")
		return
	}
	if r.PathValue("project") != f.ProjectID {
		fcmError(w, http.StatusForbidden, "PERMISSION_DENIED", "", "Permission 'cloudmessaging.messages.create' denied on resource '//cloudresourcemanager.googleapis.com/projects/"+r.PathValue("project")+"'")
		return
	}
	if r.PathValue("op") != "messages:send" {
		fcmError(w, http.StatusNotFound, "NOT_FOUND", "", "no such method "+r.PathValue("op"))
		return
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Content-Type must be application/json")
		return
	}
	var req struct {
		ValidateOnly bool `json:"validate_only"`
		Message      struct {
			Token        string `json:"token"`
			Topic        string `json:"topic"`
			Condition    string `json:"condition"`
			Notification *struct {
				Title string `json:"title"`
				Body  string `json:"body"`
				Image string `json:"image"`
			} `json:"notification"`
			Data    map[string]string `json:"data"`
			Android *struct {
				CollapseKey string `json:"collapse_key"`
			} `json:"android"`
			APNS *struct {
				Headers map[string]string `json:"headers"`
			} `json:"apns"`
			Webpush json.RawMessage `json:"webpush"`
		} `json:"message"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Invalid JSON payload received. "+err.Error())
		return
	}
	m := req.Message
	targets := 0
	for _, t := range []string{m.Token, m.Topic, m.Condition} {
		if t != "" {
			targets++
		}
	}
	var problem string
	switch {
	case targets != 1:
		problem = "exactly one of token, topic, condition is required"
	case m.Notification == nil || m.Notification.Title == "" || m.Notification.Body == "":
		problem = "notification.title and notification.body are expected here"
	case len(m.Data["notification_id"]) == 0 || len(m.Data["url"]) == 0:
		problem = "data.notification_id and data.url are expected here"
	}
	payload := 0
	for k, v := range m.Data {
		payload += len(k) + len(v)
		if k == "from" || strings.HasPrefix(k, "google") || strings.HasPrefix(k, "gcm") {
			problem = "data key " + k + " is reserved"
		}
	}
	if m.Notification != nil {
		payload += len(m.Notification.Title) + len(m.Notification.Body) + len(m.Notification.Image)
	}
	if payload > fcmMaxPayload {
		problem = "message is too big: " + strconv.Itoa(payload) + " bytes"
	}
	if problem != "" {
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", problem)
		return
	}

	f.mu.Lock()
	f.reqs++
	var reply *FCMReply
	if len(f.fail) > 0 {
		reply = &f.fail[0]
		f.fail = f.fail[1:]
	}
	gone := f.gone[m.Token]
	f.mu.Unlock()
	switch {
	case reply != nil:
		if reply.RetryAfter != "" {
			w.Header().Set("Retry-After", reply.RetryAfter)
		}
		code, status := reply.ErrorCode, map[int]string{429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 401: "UNAUTHENTICATED"}[reply.Status]
		if code == "" {
			code = map[int]string{429: "QUOTA_EXCEEDED", 500: "INTERNAL", 503: "UNAVAILABLE", 401: "THIRD_PARTY_AUTH_ERROR"}[reply.Status]
		}
		fcmError(w, reply.Status, status, code, "told to fail")
		return
	case gone == "UNREGISTERED":
		fcmError(w, http.StatusNotFound, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
		return
	case gone != "":
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token",
			map[string]any{"@type": "type.googleapis.com/google.rpc.BadRequest", "fieldViolations": []map[string]string{{"field": "message.token", "description": "Invalid registration token"}}})
		return
	}
	f.mu.Lock()
	name := fmt.Sprintf("projects/%s/messages/0:%d%%%s", f.ProjectID, len(f.msgs)+1, f.keyID[:8])
	msg := FCMMessage{Name: name, Token: m.Token, Title: m.Notification.Title, Body: m.Notification.Body, Image: m.Notification.Image, Data: m.Data}
	if m.Android != nil {
		msg.CollapseKey = m.Android.CollapseKey
	}
	if m.APNS != nil {
		msg.APNSCollapse = m.APNS.Headers["apns-collapse-id"]
	}
	if !req.ValidateOnly {
		f.msgs = append(f.msgs, msg)
	}
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]string{"name": name})
}
