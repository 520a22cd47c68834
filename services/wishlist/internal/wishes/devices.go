package wishes

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"backinstock/topics/events"
)

// ErrTooManyDevices refuses a registration past events.MaxDevices; the API
// answers it 409 (the body is valid, the user's state refuses it).
var ErrTooManyDevices = errors.New("too many devices")

// ErrTokenMismatch refuses a conditional removal whose token hash is not
// the stored device's: the device was registered again with a new token
// meanwhile, and stays.
var ErrTokenMismatch = errors.New("the device holds another token")

// WithDevice returns devs with d registered: a device of the same id is
// replaced; a device of another id holding the same token or endpoint is
// dropped (one app install or browser subscription is one device, so a
// client that picked a new id does not get every push twice). created
// reports whether d's id is new. The result is sorted by id.
func WithDevice(devs []events.Device, d events.Device) (out []events.Device, created bool, err error) {
	created = true
	out = make([]events.Device, 0, len(devs)+1)
	for _, o := range devs {
		switch {
		case o.ID == d.ID:
			created = false
		case o.Kind == d.Kind && o.Handle() == d.Handle():
		default:
			out = append(out, o)
		}
	}
	if len(out) >= events.MaxDevices {
		return devs, false, fmt.Errorf("%w: the user has %d devices, the most there may be; remove one first (DELETE /v1/users/{user_id}/devices/{device_id})", ErrTooManyDevices, len(out))
	}
	out = append(out, d)
	sortDevices(out)
	return out, created, nil
}

// WithoutDevice returns devs without the device id. With tokenSHA256 not
// empty the device goes only while its handle hashes to it
// (events.Device.TokenSHA256); otherwise devs comes back unchanged with
// ErrTokenMismatch. removed is false when there was no such device.
func WithoutDevice(devs []events.Device, id, tokenSHA256 string) (out []events.Device, removed bool, err error) {
	i := slices.IndexFunc(devs, func(d events.Device) bool { return d.ID == id })
	if i < 0 {
		return devs, false, nil
	}
	if tokenSHA256 != "" && devs[i].TokenSHA256() != tokenSHA256 {
		return devs, false, fmt.Errorf("%w: device %s of this user was registered again with a token whose %s is not %s; it stays", ErrTokenMismatch, id, events.DeviceTokenParam, tokenSHA256)
	}
	out = slices.Delete(slices.Clone(devs), i, i+1)
	if len(out) == 0 {
		out = nil
	}
	return out, true, nil
}

// DevicesOf are the devices of kind among devs (nil when none), in devs'
// order.
func DevicesOf(devs []events.Device, kind string) []events.Device {
	if kind == "" {
		return nil
	}
	n := 0
	for _, d := range devs {
		if d.Kind == kind {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if n == len(devs) {
		return devs
	}
	out := make([]events.Device, 0, n)
	for _, d := range devs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

func sortDevices(devs []events.Device) {
	slices.SortFunc(devs, func(a, b events.Device) int { return strings.Compare(a.ID, b.ID) })
}

// CheckTokenSHA256 accepts the conditional removal's parameter: 64
// lowercase hex digits, as events.Device.TokenSHA256 writes it.
func CheckTokenSHA256(s string) error {
	if len(s) != 64 || strings.Trim(s, "0123456789abcdef") != "" {
		return &FieldError{Field: events.DeviceTokenParam, Problem: fmt.Sprintf("must be 64 lowercase hex digits (the SHA-256 of the device's token or endpoint), got %q", clip(s))}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
