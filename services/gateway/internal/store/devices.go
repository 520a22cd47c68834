package store

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"

	"backinstock/topics/userdata"
)

// Per push notification, the devices the provider already accepted it for:
//
//	gwy:{<region>|<user_id>}:devices:<notification_id>
//	    hash device id -> provider message id      EX = marker TTL
//
// A push goes to each of the user's devices, one provider call per device,
// and the notification's delivered marker is written only once all of them
// are answered. A retry (one device failed transiently) or a redelivery
// after a crash reads this hash and skips the devices that have it: each
// device gets the notification once, and the unguarded window shrinks from
// "between the first device's accept and the marker" to "between one
// device's accept and its entry here".

func (s *Store) devicesKey(userID, notificationID string) string {
	return userdata.GatewayDevicesKey(s.region, userID, notificationID)
}

// SentDevices returns the devices the notification was accepted for so
// far, device id -> provider message id.
func (s *Store) SentDevices(ctx context.Context, userID, notificationID string) (map[string]string, error) {
	m, err := s.rdb.HGetAll(ctx, s.devicesKey(userID, notificationID)).Result()
	if err != nil {
		return nil, fmt.Errorf("devices sent for %s: %w", notificationID, err)
	}
	return m, nil
}

// MarkDeviceSent records that the provider accepted the notification for
// deviceID. Idempotent: go-redis retrying it writes the same field again.
func (s *Store) MarkDeviceSent(ctx context.Context, userID, notificationID, deviceID, providerMessageID string) error {
	key := s.devicesKey(userID, notificationID)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, deviceID, providerMessageID)
		p.Expire(ctx, key, s.markerTTL)
		return nil
	})
	if err != nil {
		return fmt.Errorf("mark %s sent to device %s: %w", notificationID, deviceID, err)
	}
	return nil
}
