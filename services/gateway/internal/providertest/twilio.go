// Package providertest holds local stand-ins of the third-party HTTP
// providers the gateway calls, for its tests: each implements the
// provider's documented API and checks what the real one checks (auth,
// paths, required fields, formats), records what it accepted, and can be
// told to fail the way the real one does. Twilio's Messages API is the
// first; FCM, Web Push and webhook receivers belong here beside it. It is
// not used by the gateway itself.
package providertest

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // Twilio signs with HMAC-SHA1; this is its algorithm, not a choice.
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"backinstock/shared/testenv"
)

// TwilioOptions configure a Twilio stand-in.
type TwilioOptions struct {
	// AccountSID and AuthToken are the account's credentials (basic auth
	// as AccountSID:AuthToken, and the key status callbacks are signed
	// with). Defaults: a fixed test account.
	AccountSID, AuthToken string
	// APIKeys are API key SIDs and their secrets, also accepted for basic
	// auth (SK…:secret).
	APIKeys map[string]string
	// From lists the sender numbers the account owns; MessagingServices
	// the Messaging Service SIDs. A From or MessagingServiceSid outside
	// them is refused (21606, 21701) as Twilio does. Empty: any.
	From              []string
	MessagingServices []string
}

// TwilioMessage is one message the stand-in accepted.
type TwilioMessage struct {
	SID                 string
	To, From, Body      string
	MessagingServiceSID string
	StatusCallback      string
	// IdempotencyKey is the request's Idempotency-Key header.
	IdempotencyKey string
	At             time.Time
}

// TwilioRequest is one request to the Messages endpoint, accepted or not.
type TwilioRequest struct {
	IdempotencyKey string
	To             string
	Status         int
	At             time.Time
}

// TwilioReply is an answer the stand-in is told to give instead of
// accepting: Status 503, 429 with RetryAfter, 400 with Code (a Twilio
// error code such as 21211).
type TwilioReply struct {
	Status     int
	RetryAfter string
	Code       int
	Message    string
}

// Twilio is a local server with the shape of Twilio's Messages API
// (POST /2010-04-01/Accounts/{AccountSid}/Messages.json).
type Twilio struct {
	// URL is the base URL (TWILIO_BASE_URL).
	URL string
	o   TwilioOptions
	srv *http.Server
	ln  net.Listener

	mu       sync.Mutex
	msgs     []TwilioMessage
	reqs     []TwilioRequest
	fail     *TwilioReply
	failLeft int // > 0: answers of fail left; < 0: until cleared
	rejectTo map[string]TwilioReply
}

// Twilio's documented test credentials' shape: AC + 32 hex, a 32-hex token.
const (
	TestAccountSID = "AC00000000000000000000000000000001"
	TestAuthToken  = "0123456789abcdef0123456789abcdef"
)

// NewTwilio starts a stand-in on a free 127.0.0.1 port, stopped when the
// test ends.
func NewTwilio(tb testing.TB, o TwilioOptions) *Twilio {
	tb.Helper()
	if o.AccountSID == "" {
		o.AccountSID = TestAccountSID
	}
	if o.AuthToken == "" {
		o.AuthToken = TestAuthToken
	}
	port, err := testenv.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		tb.Fatal(err)
	}
	tw := &Twilio{URL: "http://" + ln.Addr().String(), o: o, ln: ln, rejectTo: map[string]TwilioReply{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/2010-04-01/Accounts/{account}/Messages.json", tw.messages)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	})
	tw.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = tw.srv.Serve(ln) }()
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tw.srv.Shutdown(ctx)
	})
	return tw
}

// AccountSID and AuthToken are the stand-in's credentials.
func (tw *Twilio) AccountSID() string { return tw.o.AccountSID }

// AuthToken is the account's auth token.
func (tw *Twilio) AuthToken() string { return tw.o.AuthToken }

// Fail makes the next n valid requests get r instead of being accepted
// (n < 0: every one until Fail is called again; n = 0: none, back to
// accepting).
func (tw *Twilio) Fail(n int, r TwilioReply) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.fail, tw.failLeft = &r, n
	if n == 0 {
		tw.fail = nil
	}
}

// RejectTo makes every message to number get r (a 400 with a Twilio
// code: 21211 invalid 'To', 21610 unsubscribed, 21614 not a mobile).
func (tw *Twilio) RejectTo(number string, r TwilioReply) {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	tw.rejectTo[number] = r
}

// Messages returns the accepted messages in arrival order.
func (tw *Twilio) Messages() []TwilioMessage {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return append([]TwilioMessage(nil), tw.msgs...)
}

// Requests returns every request to the Messages endpoint that passed
// authentication, in arrival order, with the status it got.
func (tw *Twilio) Requests() []TwilioRequest {
	tw.mu.Lock()
	defer tw.mu.Unlock()
	return append([]TwilioRequest(nil), tw.reqs...)
}

// e164 is Twilio's check of a To number: +, country code, up to 15 digits.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// maxBody is Twilio's limit on Body: 1,600 characters.
const maxBody = 1600

func (tw *Twilio) messages(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		twilioError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}
	if !tw.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if r.PathValue("account") != tw.o.AccountSID {
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		twilioError(w, http.StatusBadRequest, 20001, "Content-Type must be application/x-www-form-urlencoded, got "+ct)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		twilioError(w, http.StatusBadRequest, 20001, "cannot read the form: "+err.Error())
		return
	}
	f := r.PostForm
	m := TwilioMessage{
		To: f.Get("To"), From: f.Get("From"), Body: f.Get("Body"), MessagingServiceSID: f.Get("MessagingServiceSid"),
		StatusCallback: f.Get("StatusCallback"), IdempotencyKey: r.Header.Get("Idempotency-Key"), At: time.Now(),
	}
	status, reply := tw.check(m)
	tw.mu.Lock()
	if reply == nil {
		if rj, ok := tw.rejectTo[m.To]; ok {
			reply = &rj
		} else if tw.fail != nil && tw.failLeft != 0 {
			reply = tw.fail
			if tw.failLeft > 0 {
				tw.failLeft--
			}
		}
		if reply != nil {
			status = reply.Status
		}
	}
	if reply == nil {
		status = http.StatusCreated
		m.SID = "SM" + randomHex(16)
		tw.msgs = append(tw.msgs, m)
	}
	tw.reqs = append(tw.reqs, TwilioRequest{IdempotencyKey: m.IdempotencyKey, To: m.To, Status: status, At: m.At})
	tw.mu.Unlock()

	if reply != nil {
		if reply.RetryAfter != "" {
			w.Header().Set("Retry-After", reply.RetryAfter)
		}
		code, msg := reply.Code, reply.Message
		if code == 0 {
			code = 20000 + reply.Status // 20429 Too Many Requests, 20503 Service Unavailable
		}
		if msg == "" {
			msg = http.StatusText(reply.Status)
		}
		twilioError(w, reply.Status, code, msg)
		return
	}
	segments := (utf8.RuneCountInString(m.Body) + 152) / 153
	if utf8.RuneCountInString(m.Body) <= 160 {
		segments = 1
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"sid": m.SID, "account_sid": tw.o.AccountSID, "to": m.To, "from": nullable(m.From), "body": m.Body,
		"messaging_service_sid": nullable(m.MessagingServiceSID), "status": "queued", "direction": "outbound-api",
		"num_segments": strconv.Itoa(segments), "num_media": "0", "api_version": "2010-04-01",
		"date_created": m.At.UTC().Format(time.RFC1123Z), "error_code": nil, "error_message": nil, "price": nil,
		"uri": "/2010-04-01/Accounts/" + tw.o.AccountSID + "/Messages/" + m.SID + ".json",
	})
}

// check is what Twilio checks of a valid request's form; a refusal is a
// 400 with Twilio's code.
func (tw *Twilio) check(m TwilioMessage) (int, *TwilioReply) {
	bad := func(code int, msg string) (int, *TwilioReply) {
		return http.StatusBadRequest, &TwilioReply{Status: http.StatusBadRequest, Code: code, Message: msg}
	}
	switch {
	case m.To == "":
		return bad(21604, "A 'To' phone number is required.")
	case !e164.MatchString(m.To):
		return bad(21211, "Invalid 'To' Phone Number: "+m.To)
	case m.From == "" && m.MessagingServiceSID == "":
		return bad(21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message")
	case m.From != "" && len(tw.o.From) > 0 && !slices.Contains(tw.o.From, m.From):
		return bad(21606, "The From phone number "+m.From+" is not a valid, SMS-capable inbound phone number or short code for your account.")
	case m.MessagingServiceSID != "" && len(tw.o.MessagingServices) > 0 && !slices.Contains(tw.o.MessagingServices, m.MessagingServiceSID):
		return bad(21701, "The Messaging Service Sid "+m.MessagingServiceSID+" is invalid.")
	case m.Body == "":
		return bad(21602, "Message body is required.")
	case utf8.RuneCountInString(m.Body) > maxBody:
		return bad(21617, "The concatenated message body exceeds the 1600 character limit.")
	}
	if m.StatusCallback != "" {
		u, err := url.Parse(m.StatusCallback)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad(21609, "Invalid StatusCallback URL: "+m.StatusCallback)
		}
	}
	return 0, nil
}

// authorized checks HTTP basic auth: the account SID with the auth token,
// or an API key SID with its secret.
func (tw *Twilio) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	if user == tw.o.AccountSID {
		return hmac.Equal([]byte(pass), []byte(tw.o.AuthToken))
	}
	secret, ok := tw.o.APIKeys[user]
	return ok && hmac.Equal([]byte(pass), []byte(secret))
}

// CallbackRequest is the status callback Twilio would POST for m: the
// form Twilio sends (MessageSid, MessageStatus, ErrorCode when there is
// one, …) to m.StatusCallback, signed in X-Twilio-Signature with the
// account's auth token.
func (tw *Twilio) CallbackRequest(m TwilioMessage, status, errorCode string) (*http.Request, error) {
	if m.StatusCallback == "" {
		return nil, fmt.Errorf("message %s has no StatusCallback", m.SID)
	}
	form := url.Values{
		"AccountSid": {tw.o.AccountSID}, "ApiVersion": {"2010-04-01"},
		"MessageSid": {m.SID}, "SmsSid": {m.SID}, "MessageStatus": {status}, "SmsStatus": {status},
		"To": {m.To},
	}
	if m.From != "" {
		form.Set("From", m.From)
	}
	if m.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	if errorCode != "" {
		form.Set("ErrorCode", errorCode)
	}
	req, err := http.NewRequest(http.MethodPost, m.StatusCallback, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	req.Header.Set("I-Twilio-Idempotency-Token", randomHex(16))
	req.Header.Set("X-Twilio-Signature", TwilioSignature(tw.o.AuthToken, m.StatusCallback, form))
	return req, nil
}

// TwilioSignature is X-Twilio-Signature as Twilio documents it
// (https://www.twilio.com/docs/usage/security#validating-requests): the
// full URL, then each POST parameter's name and value, sorted by name,
// appended without separators; HMAC-SHA1 with the auth token; base64.
// Written here independently of the gateway's verifier, so a mistake in
// either shows.
func TwilioSignature(authToken, fullURL string, form url.Values) string {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range names {
		vs := append([]string(nil), form[k]...)
		sort.Strings(vs)
		for _, v := range vs {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

func twilioError(w http.ResponseWriter, status, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"code": code, "message": msg, "status": status,
		"more_info": "https://www.twilio.com/docs/errors/" + strconv.Itoa(code),
	})
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
