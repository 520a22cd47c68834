package events_test

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"backinstock/topics/events"
)

func TestDeviceRemovalPathNamesTheHandleByItsHash(t *testing.T) {
	hash := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	fcm := events.Device{ID: "phone", Kind: events.DeviceFCM, Token: "fcm-token:APA91b"}
	web := events.Device{ID: "laptop", Kind: events.DeviceWebPush, Endpoint: "https://push.example/send/abc", P256dh: validPushKey, Auth: validPushAuth}
	for _, tc := range []struct {
		d    events.Device
		want string
	}{
		{fcm, "/v1/users/user_42/devices/phone?token_sha256=" + hash("fcm-token:APA91b")},
		{web, "/v1/users/user_42/devices/laptop?token_sha256=" + hash("https://push.example/send/abc")},
	} {
		if got := events.DeviceRemovalPath("user_42", tc.d); got != tc.want {
			t.Errorf("DeviceRemovalPath(%s) = %s, want %s", tc.d.ID, got, tc.want)
		}
	}
	if fcm.TokenSHA256() == (events.Device{ID: "phone", Kind: events.DeviceFCM, Token: "another"}).TokenSHA256() {
		t.Error("two tokens hash alike")
	}
}
