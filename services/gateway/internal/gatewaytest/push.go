package gatewaytest

import (
	"fmt"

	"backinstock/topics/events"
)

// PushNotification is a valid notification of user about sku in region on
// channel app or web, carrying devices.
func PushNotification(region, user, sku string, episode int64, channel string, devices ...events.Device) events.Notification {
	n := Notification(region, user, sku, episode)
	n.Channel, n.Contact, n.Devices = channel, "", devices
	n.NotificationID = events.NotificationID(user, sku, region, episode, channel)
	return n
}

// FCMDevice is an fcm device with a made-up registration token.
func FCMDevice(id string) events.Device {
	return events.Device{ID: id, Kind: events.DeviceFCM, Token: fmt.Sprintf("fcm-token-%s:APA91b%040d", id, len(id))}
}
