// Package fcm is the app channel's provider: Firebase Cloud Messaging's
// HTTP v1 API, one request per device
// (POST {base}/v1/projects/{project_id}/messages:send), authorized with an
// OAuth2 access token the service account's key obtains (the JWT bearer
// grant of RFC 7523 at the key file's token_uri, scope
// firebase.messaging), cached until it expires. FCM has no idempotency
// key: a resend is a second message, which the collapse key (the
// product's push.Topic) folds into one on a device that has not fetched
// the first.
package fcm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
	"golang.org/x/oauth2/jwt"

	"backinstock/services/gateway/internal/httpsend"
	"backinstock/services/gateway/internal/push"
	"backinstock/services/gateway/internal/render"
	"backinstock/services/gateway/internal/retry"
	"backinstock/shared/config"
	"backinstock/topics/events"
)

// ProviderName is the provider label of the app channel.
const ProviderName = "fcm"

// Scope is the OAuth2 scope of the FCM v1 API.
const Scope = "https://www.googleapis.com/auth/firebase.messaging"

// DefaultBaseURL is FCM's API.
const DefaultBaseURL = "https://fcm.googleapis.com"

// Config is the FCM provider's configuration.
type Config struct {
	// BaseURL is the API's base URL (FCM_BASE_URL).
	BaseURL string
	// CredentialsFile is the service account's JSON key (FCM_CREDENTIALS_FILE).
	CredentialsFile string
	// ProjectID is the Firebase project (FCM_PROJECT_ID; default: the
	// key's project_id).
	ProjectID string
	// Timeout bounds one call, the token exchange included.
	Timeout time.Duration
}

// Validate names what is wrong, by env variable; it reads the key file.
func (c Config) Validate(ackWait time.Duration) error {
	var p config.Problems
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p.Addf("FCM_BASE_URL", "%q is not an http(s) URL", c.BaseURL)
	}
	if c.Timeout <= 0 {
		p.Addf("FCM_TIMEOUT", "must be positive, got %s", c.Timeout)
	} else if ackWait > 0 && c.Timeout >= ackWait {
		p.Addf("FCM_TIMEOUT", "%s is not below GATEWAY_ACK_WAIT %s", c.Timeout, ackWait)
	}
	if c.CredentialsFile == "" {
		p.Addf("FCM_CREDENTIALS_FILE", "required for app=fcm: the service account's JSON key")
	} else if _, project, err := loadKey(c.CredentialsFile); err != nil {
		p.Addf("FCM_CREDENTIALS_FILE", "%v", err)
	} else if c.ProjectID == "" && project == "" {
		p.Addf("FCM_PROJECT_ID", "required: the key file names no project_id")
	}
	return p.Err()
}

// loadKey reads a service account key: the JWT grant's configuration and
// the key's project.
func loadKey(path string) (*jwt.Config, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	cfg, err := google.JWTConfigFromJSON(data, Scope)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", path, err)
	}
	var f struct {
		ProjectID string `json:"project_id"`
	}
	_ = json.Unmarshal(data, &f) // JWTConfigFromJSON parsed it already
	return cfg, f.ProjectID, nil
}

// Sender sends to FCM.
type Sender struct {
	client  *http.Client
	sendURL string
	jwt     *jwt.Config
	// ctx carries the token exchange's HTTP client; the exchange outlives
	// any one send.
	ctx    context.Context
	tokens atomic.Pointer[oauth2.TokenSource]
}

// NewSender builds the sender; c must be valid.
func NewSender(c Config) (*Sender, error) {
	jc, project, err := loadKey(c.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("FCM_CREDENTIALS_FILE: %w", err)
	}
	if c.ProjectID != "" {
		project = c.ProjectID
	}
	client := &http.Client{Timeout: c.Timeout}
	s := &Sender{
		client:  client,
		sendURL: strings.TrimRight(c.BaseURL, "/") + "/v1/projects/" + url.PathEscape(project) + "/messages:send",
		jwt:     jc,
		ctx:     context.WithValue(context.Background(), oauth2.HTTPClient, client),
	}
	s.renewTokens()
	return s, nil
}

// renewTokens starts a new token cache: the next send exchanges the key
// for a fresh access token.
func (s *Sender) renewTokens() {
	ts := s.jwt.TokenSource(s.ctx) // cached until it expires (oauth2.ReuseTokenSource)
	s.tokens.Store(&ts)
}

// Name is ProviderName.
func (s *Sender) Name() string { return ProviderName }

// message is the v1 API's Message, the fields we set.
type message struct {
	Token        string            `json:"token"`
	Notification notification      `json:"notification"`
	Data         map[string]string `json:"data"`
	Android      android           `json:"android"`
	APNS         apns              `json:"apns"`
}

type notification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	Image string `json:"image,omitempty"`
}

type android struct {
	CollapseKey string `json:"collapse_key"`
}

type apns struct {
	Headers map[string]string `json:"headers"`
}

// Send pushes msg to the device's registration token and returns the
// message's name (projects/…/messages/…).
func (s *Sender) Send(ctx context.Context, n events.Notification, d events.Device, msg render.Push) (string, error) {
	if d.Kind != events.DeviceFCM || d.Token == "" {
		return "", retry.Permanent("invalid", fmt.Errorf("device %s is not an fcm device with a token", d.ID))
	}
	ts := *s.tokens.Load()
	tok, err := ts.Token()
	if err != nil {
		// A key the token endpoint refuses is an operator's mistake: the
		// work waits in the stream until it is fixed.
		return "", retry.Transient("fcm_auth", fmt.Errorf("fcm access token: %w", err))
	}
	topic := push.Topic(n)
	body, err := json.Marshal(map[string]message{"message": {
		Token:        d.Token,
		Notification: notification{Title: msg.Title, Body: msg.Body, Image: msg.ImageURL},
		// The app opens url on a tap; notification_id ties its open
		// events to the receipt.
		Data:    map[string]string{"notification_id": n.NotificationID, "url": msg.URL, "sku": n.SKU},
		Android: android{CollapseKey: topic},
		APNS:    apns{Headers: map[string]string{"apns-collapse-id": topic}},
	}})
	if err != nil {
		return "", retry.Permanent("invalid", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.sendURL, bytes.NewReader(body))
	if err != nil {
		return "", retry.Permanent("invalid", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=UTF-8")
	tok.SetAuthHeader(req)
	resp, err := httpsend.Do(ctx, s.client, req)
	if err != nil {
		return "", err
	}
	if resp.Status == http.StatusOK {
		var ok struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(resp.Body, &ok); err != nil || ok.Name == "" {
			// Accepted all the same: sending again would duplicate it.
			return "", nil
		}
		return ok.Name, nil
	}
	return "", s.classify(resp)
}

// apiError is FCM's error answer (google.rpc.Status).
type apiError struct {
	Error struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Status  string `json:"status"`
		Details []struct {
			Type            string `json:"@type"`
			ErrorCode       string `json:"errorCode"`
			FieldViolations []struct {
				Field string `json:"field"`
			} `json:"fieldViolations"`
		} `json:"details"`
	} `json:"error"`
}

const (
	fcmErrorType  = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
	badRequestTyp = "type.googleapis.com/google.rpc.BadRequest"
)

// classify reads FCM's error codes
// (https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode):
// UNREGISTERED and INVALID_ARGUMENT about the token mean the device is
// gone; SENDER_ID_MISMATCH is permanent but the device is kept (a wrong
// FCM_PROJECT_ID would otherwise delete every device); the answers about
// our own credentials (401, 403 and THIRD_PARTY_AUTH_ERROR: the APNs key
// in the Firebase project) are transient, like an SMTP login failure, so
// the work waits for the fix; QUOTA_EXCEEDED, UNAVAILABLE and INTERNAL
// are transient with Retry-After (httpsend.Classify).
func (s *Sender) classify(resp httpsend.Response) error {
	var e apiError
	_ = json.Unmarshal(resp.Body, &e)
	code, tokenField := "", false
	for _, d := range e.Error.Details {
		switch d.Type {
		case fcmErrorType:
			code = d.ErrorCode
		case badRequestTyp:
			for _, v := range d.FieldViolations {
				tokenField = tokenField || v.Field == "message.token"
			}
		}
	}
	if code == "" {
		code = e.Error.Status
	}
	err := resp.Err(ProviderName)
	if e.Error.Message != "" {
		err = fmt.Errorf("fcm answered %d %s: %s", resp.Status, code, e.Error.Message)
	}
	label := "fcm_" + strings.ToLower(code)
	switch {
	case code == "UNREGISTERED":
		return push.Gone(retry.Permanent(label, err))
	case code == "INVALID_ARGUMENT" && (tokenField || strings.Contains(strings.ToLower(e.Error.Message), "registration token")):
		return push.Gone(retry.Permanent("fcm_invalid_token", err))
	case code == "SENDER_ID_MISMATCH", code == "INVALID_ARGUMENT":
		return retry.Permanent(label, err)
	case code == "THIRD_PARTY_AUTH_ERROR", resp.Status == http.StatusUnauthorized, resp.Status == http.StatusForbidden:
		if resp.Status == http.StatusUnauthorized {
			// The token may have been revoked before it expired.
			s.renewTokens()
		}
		return retry.TransientAfter("fcm_"+fmt.Sprint(resp.Status), err, httpsend.RetryAfter(resp.Header, time.Now()))
	}
	return httpsend.Classify(ProviderName, resp, time.Now())
}

var _ push.Sender = (*Sender)(nil)
