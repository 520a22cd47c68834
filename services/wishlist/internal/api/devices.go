package api

import (
	"errors"
	"net/http"

	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/httpapi"
	"backinstock/topics/events"
)

// deviceBody is a PUT's body: an FCM token, or a Web Push subscription
// either flat (endpoint, p256dh, auth, as events.Device has them) or as the
// browser's PushSubscription.toJSON() gives it (keys.p256dh, keys.auth,
// and an expirationTime that is accepted and not kept: push services
// answer 404/410 once a subscription has expired, and the gateway then
// removes it).
type deviceBody struct {
	Kind           string    `json:"kind"`
	Token          string    `json:"token,omitempty"`
	Endpoint       string    `json:"endpoint,omitempty"`
	P256dh         string    `json:"p256dh,omitempty"`
	Auth           string    `json:"auth,omitempty"`
	Keys           *pushKeys `json:"keys,omitempty"`
	ExpirationTime *float64  `json:"expirationTime,omitempty"`
}

type pushKeys struct {
	P256dh string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// device is the body as an events.Device named id, checked by the
// contract's rules (events.Device.Validate: a 422 naming the field).
func (b deviceBody) device(id string) (events.Device, error) {
	d := events.Device{ID: id, Kind: b.Kind, Token: b.Token, Endpoint: b.Endpoint, P256dh: b.P256dh, Auth: b.Auth}
	if b.Keys != nil {
		if b.P256dh != "" || b.Auth != "" {
			return d, &wishes.FieldError{Field: "keys", Problem: "give the keys either as keys.p256dh and keys.auth (PushSubscription.toJSON()) or as p256dh and auth, not both"}
		}
		d.P256dh, d.Auth = b.Keys.P256dh, b.Keys.Auth
	}
	if b.ExpirationTime != nil && b.Kind != events.DeviceWebPush {
		return d, &wishes.FieldError{Field: "expirationTime", Problem: "only a webpush subscription has one"}
	}
	return d, d.Validate()
}

type devicesView struct {
	UserID  string          `json:"user_id"`
	Devices []events.Device `json:"devices"`
}

func (a *API) putDevice(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id", "device_id")
	if err != nil {
		return err
	}
	var body deviceBody
	if err := httpapi.Decode(w, r, a.o.MaxBodyBytes, &body); err != nil {
		return err
	}
	d, err := body.device(ids[1])
	if err != nil {
		return err
	}
	created := false
	_, err = a.svc.UpdatePrefs(r.Context(), ids[0], func(cur *wishes.Preferences) (*wishes.Preferences, bool, error) {
		if cur == nil {
			cur = &wishes.Preferences{}
		}
		devs, isNew, err := wishes.WithDevice(cur.Devices, d)
		if err != nil {
			return nil, false, err
		}
		cur.Devices, created = devs, isNew
		return cur, true, nil
	})
	if errors.Is(err, wishes.ErrTooManyDevices) {
		return httpapi.Errorf(http.StatusConflict, "too_many_devices", "%v", err)
	}
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	httpapi.WriteJSON(w, status, d)
	return nil
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id", "device_id")
	if err != nil {
		return err
	}
	q := r.URL.Query()
	hash := q.Get(events.DeviceTokenParam)
	if q.Has(events.DeviceTokenParam) {
		if err := wishes.CheckTokenSHA256(hash); err != nil {
			return err
		}
	}
	_, err = a.svc.UpdatePrefs(r.Context(), ids[0], func(cur *wishes.Preferences) (*wishes.Preferences, bool, error) {
		if cur == nil {
			return nil, false, nil
		}
		devs, removed, err := wishes.WithoutDevice(cur.Devices, ids[1], hash)
		if err != nil || !removed {
			return nil, false, err
		}
		cur.Devices = devs
		return cur, true, nil
	})
	if errors.Is(err, wishes.ErrTokenMismatch) {
		return httpapi.Errorf(http.StatusPreconditionFailed, "token_mismatch", "%v", err)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) error {
	ids, err := pathIDs(r, "user_id")
	if err != nil {
		return err
	}
	p, err := a.svc.Store.Prefs(r.Context(), ids[0])
	if err != nil {
		return err
	}
	v := devicesView{UserID: ids[0], Devices: []events.Device{}}
	if p != nil && len(p.Devices) > 0 {
		v.Devices = p.Devices
	}
	httpapi.WriteJSON(w, http.StatusOK, v)
	return nil
}
