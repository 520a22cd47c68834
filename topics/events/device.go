package events

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strconv"
)

// The kinds of push device a user registers: an app install reached
// through Firebase Cloud Messaging, a browser through Web Push.
const (
	DeviceFCM     = "fcm"
	DeviceWebPush = "webpush"
)

// MaxDevices bounds the devices of one user (and so of one push
// notification): a phone, a tablet and a few browsers, not a fleet.
const MaxDevices = 10

// Device is one push destination a user registered: an FCM registration
// token (Kind fcm, channel app) or a Web Push subscription (Kind webpush,
// channel web: the push service's endpoint and the browser's keys, as the
// browser's PushSubscription.toJSON() gives them).
type Device struct {
	// ID is the user's name for the device, unique per user.
	ID   string `json:"id"`
	Kind string `json:"kind"`
	// Token is the FCM registration token.
	Token string `json:"token,omitempty"`
	// Endpoint, P256dh and Auth are the Web Push subscription: the push
	// service URL, the browser's P-256 public key (65 bytes uncompressed)
	// and its 16-byte authentication secret, both base64url.
	Endpoint string `json:"endpoint,omitempty"`
	P256dh   string `json:"p256dh,omitempty"`
	Auth     string `json:"auth,omitempty"`
}

// The wishlist API's route of one device (PUT registers, GET lists the
// user's devices at the parent path, DELETE removes), and the query
// parameter of the conditional removal: DELETE removes the device only
// while its handle still hashes to the parameter's value (TokenSHA256), so
// a gateway that removes a dead token never removes the device its app
// re-registered with a new one meanwhile.
const (
	DevicePath       = "/v1/users/{user_id}/devices/{device_id}"
	DeviceTokenParam = "token_sha256"
)

// DeviceRemovalPath is the path and query a gateway sends DELETE to (with
// the wishlist API's bearer token) when the push service answers that d of
// userID is gone (FCM UNREGISTERED or an invalid token, Web Push 404/410).
// Ids match [A-Za-z0-9_-], so nothing needs escaping.
func DeviceRemovalPath(userID string, d Device) string {
	return "/v1/users/" + userID + "/devices/" + d.ID + "?" + DeviceTokenParam + "=" + d.TokenSHA256()
}

// Handle is what the push service knows the device by: the FCM token, or
// the Web Push endpoint (a browser that subscribes again gets a new one).
func (d Device) Handle() string {
	if d.Kind == DeviceWebPush {
		return d.Endpoint
	}
	return d.Token
}

// TokenSHA256 is the lowercase hex SHA-256 of Handle, the value of
// DeviceTokenParam: it names the token without putting it in a URL (and in
// access logs).
func (d Device) TokenSHA256() string {
	sum := sha256.Sum256([]byte(d.Handle()))
	return hex.EncodeToString(sum[:])
}

// DeviceKindOf is the device kind that serves channel ("" for channels
// without devices).
func DeviceKindOf(channel string) string {
	switch channel {
	case ChannelApp:
		return DeviceFCM
	case ChannelWeb:
		return DeviceWebPush
	}
	return ""
}

// Validate checks a device on its own, naming fields as "device.<field>".
func (d Device) Validate() error {
	p := &problems{typ: "Device"}
	checkDevice(p, "device", d)
	return p.err()
}

// checkDevice checks one device; field is its path ("devices[0]").
func checkDevice(p *problems, field string, d Device) {
	p.check(checkID(join(field, "id"), d.ID))
	switch d.Kind {
	case DeviceFCM:
		checkText(p, join(field, "token"), d.Token, true, MaxTokenLen)
		for _, f := range [][2]string{{"endpoint", d.Endpoint}, {"p256dh", d.P256dh}, {"auth", d.Auth}} {
			if f[1] != "" {
				p.add(join(field, f[0]), "must be empty for an fcm device")
			}
		}
	case DeviceWebPush:
		if d.Token != "" {
			p.add(join(field, "token"), "must be empty for a webpush device")
		}
		checkURL(p, join(field, "endpoint"), d.Endpoint, true)
		checkKey(p, join(field, "p256dh"), d.P256dh, 65)
		checkKey(p, join(field, "auth"), d.Auth, 16)
	default:
		p.add(join(field, "kind"), "must be one of "+DeviceFCM+", "+DeviceWebPush+", got "+quote(d.Kind))
	}
}

// checkKey wants size bytes in base64url, padded or not, as browsers give
// them.
func checkKey(p *problems, field, s string, size int) {
	if s == "" {
		p.add(field, "required")
		return
	}
	b, err := base64.RawURLEncoding.DecodeString(trimPadding(s))
	if err != nil || len(b) != size {
		p.add(field, "must be "+strconv.Itoa(size)+" bytes in base64url, got "+quote(s))
	}
}

func trimPadding(s string) string {
	for len(s) > 0 && s[len(s)-1] == '=' {
		s = s[:len(s)-1]
	}
	return s
}

// checkDevices checks a notification's or a user's devices: at most
// MaxDevices, ids distinct, each of kind (when kind is not "").
func checkDevices(p *problems, field string, devices []Device, kind string) {
	if len(devices) > MaxDevices {
		p.add(field, "must hold at most "+strconv.Itoa(MaxDevices)+" devices, got "+strconv.Itoa(len(devices)))
		return
	}
	seen := map[string]bool{}
	for i, d := range devices {
		f := field + "[" + strconv.Itoa(i) + "]"
		checkDevice(p, f, d)
		if kind != "" && d.Kind != kind && (d.Kind == DeviceFCM || d.Kind == DeviceWebPush) {
			p.add(join(f, "kind"), "must be "+kind+" on this channel, got "+quote(d.Kind))
		}
		if seen[d.ID] {
			p.add(join(f, "id"), "repeats "+quote(d.ID))
		}
		seen[d.ID] = true
	}
}
