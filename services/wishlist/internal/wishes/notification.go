package wishes

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"backinstock/topics/events"
)

// Message is what every notification of one restock says; the notifier and
// the gateways need nothing else to render it.
type Message struct {
	RestockEventID string
	SKU            string
	Region         string
	Episode        int64
	Title          string
	Body           string
	URL            string
}

// MessageFor builds the message of a restock. The product's title and URL
// are used when the restock carries them; otherwise the sku stands in for the
// title and urlTemplate (with "{sku}" replaced) gives the link.
func MessageFor(ev events.RestockEvent, urlTemplate string) Message {
	title, url := ev.SKU, strings.ReplaceAll(urlTemplate, "{sku}", ev.SKU)
	if ev.Product != nil {
		if ev.Product.Title != "" {
			title = ev.Product.Title
		}
		if ev.Product.URL != "" {
			url = ev.Product.URL
		}
	}
	body := title + " is back in stock."
	if ev.Product != nil && ev.Product.Price != "" {
		body = title + " is back in stock at " + ev.Product.Price + "."
	}
	if utf8.RuneCountInString(body) > events.MaxBodyLen {
		body = string([]rune(body)[:events.MaxBodyLen])
	}
	return Message{RestockEventID: ev.EventID, SKU: ev.SKU, Region: ev.Region, Episode: ev.Episode, Title: title, Body: body, URL: url}
}

// Notification is the event for one wishlister on one channel.
func (m Message) Notification(userID, channel string, p *Preferences, at time.Time) events.Notification {
	n := events.Notification{
		NotificationID: events.NotificationID(userID, m.SKU, m.Region, m.Episode, channel),
		RestockEventID: m.RestockEventID, UserID: userID, SKU: m.SKU, Region: m.Region, Channel: channel,
		Episode: m.Episode, Title: m.Title, Body: m.Body, URL: m.URL, CreatedAt: at.UTC(),
	}
	if p != nil {
		n.Locale, n.TimeZone, n.QuietHours = p.Locale, p.TimeZone, p.QuietHours
		n.Contact = p.Contacts[channel]
		n.Devices = DevicesOf(p.Devices, events.DeviceKindOf(channel))
	}
	return n
}

// AppendNotification appends n's JSON to buf. It writes the same fields as
// encoding/json would (omitting empty optional ones), without reflection:
// a million-wishlister fan-out encodes a million or more of these, and the
// fields were validated where they entered the system.
func AppendNotification(buf []byte, n *events.Notification) []byte {
	buf = append(buf, `{"notification_id":`...)
	buf = appendString(buf, n.NotificationID)
	buf = append(buf, `,"restock_event_id":`...)
	buf = appendString(buf, n.RestockEventID)
	buf = append(buf, `,"user_id":`...)
	buf = appendString(buf, n.UserID)
	buf = append(buf, `,"sku":`...)
	buf = appendString(buf, n.SKU)
	buf = append(buf, `,"region":`...)
	buf = appendString(buf, n.Region)
	buf = append(buf, `,"channel":`...)
	buf = appendString(buf, n.Channel)
	buf = append(buf, `,"episode":`...)
	buf = strconv.AppendInt(buf, n.Episode, 10)
	buf = append(buf, `,"title":`...)
	buf = appendString(buf, n.Title)
	buf = append(buf, `,"body":`...)
	buf = appendString(buf, n.Body)
	buf = append(buf, `,"url":`...)
	buf = appendString(buf, n.URL)
	buf = append(buf, `,"created_at":"`...)
	buf = n.CreatedAt.AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, '"')
	if n.Locale != "" {
		buf = append(buf, `,"locale":`...)
		buf = appendString(buf, n.Locale)
	}
	if n.TimeZone != "" {
		buf = append(buf, `,"time_zone":`...)
		buf = appendString(buf, n.TimeZone)
	}
	if n.QuietHours != nil {
		buf = append(buf, `,"quiet_hours":{"start":`...)
		buf = appendString(buf, n.QuietHours.Start)
		buf = append(buf, `,"end":`...)
		buf = appendString(buf, n.QuietHours.End)
		buf = append(buf, '}')
	}
	if n.Contact != "" {
		buf = append(buf, `,"contact":`...)
		buf = appendString(buf, n.Contact)
	}
	buf = appendDevices(buf, n.Devices, "")
	return append(buf, '}')
}

// appendDevices appends `,"devices":[...]` with the devices of kind (all
// of them when kind is ""), nothing when there are none.
func appendDevices(buf []byte, devs []events.Device, kind string) []byte {
	first := true
	for i := range devs {
		d := &devs[i]
		if kind != "" && d.Kind != kind {
			continue
		}
		if first {
			buf = append(buf, `,"devices":[`...)
			first = false
		} else {
			buf = append(buf, ',')
		}
		buf = append(buf, `{"id":`...)
		buf = appendString(buf, d.ID)
		buf = append(buf, `,"kind":`...)
		buf = appendString(buf, d.Kind)
		if d.Token != "" {
			buf = append(buf, `,"token":`...)
			buf = appendString(buf, d.Token)
		}
		if d.Endpoint != "" {
			buf = append(buf, `,"endpoint":`...)
			buf = appendString(buf, d.Endpoint)
		}
		if d.P256dh != "" {
			buf = append(buf, `,"p256dh":`...)
			buf = appendString(buf, d.P256dh)
		}
		if d.Auth != "" {
			buf = append(buf, `,"auth":`...)
			buf = appendString(buf, d.Auth)
		}
		buf = append(buf, '}')
	}
	if !first {
		buf = append(buf, ']')
	}
	return buf
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, invalid UTF-8 replaced (as encoding/json does).
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\t':
				buf = append(buf, '\\', 't')
			case '\r':
				buf = append(buf, '\\', 'r')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[start:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// Encoder writes the notifications of one restock page: the fields every
// notification of the page shares (restock, product, created_at) are
// encoded once, and each record appends only its own id, user, channel and
// preferences. The field order differs from encoding/json's; JSON readers
// do not care, and the strict decoder accepts it. An Encoder is used by one
// goroutine at a time.
type Encoder struct {
	shared []byte
	// idTail is "|<sku>|<region>|<episode>|" of events.NotificationID's
	// hashed input, which is the same for the whole page.
	idTail []byte
	idIn   []byte
}

// NewEncoder prepares the shared part of m's notifications created at at.
func NewEncoder(m Message, at time.Time) *Encoder {
	var b []byte
	b = append(b, `,"restock_event_id":`...)
	b = appendString(b, m.RestockEventID)
	b = append(b, `,"sku":`...)
	b = appendString(b, m.SKU)
	b = append(b, `,"region":`...)
	b = appendString(b, m.Region)
	b = append(b, `,"episode":`...)
	b = strconv.AppendInt(b, m.Episode, 10)
	b = append(b, `,"title":`...)
	b = appendString(b, m.Title)
	b = append(b, `,"body":`...)
	b = appendString(b, m.Body)
	b = append(b, `,"url":`...)
	b = appendString(b, m.URL)
	b = append(b, `,"created_at":"`...)
	b = at.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	tail := []byte("|" + m.SKU + "|" + m.Region + "|" + strconv.FormatInt(m.Episode, 10) + "|")
	return &Encoder{shared: b, idTail: tail}
}

// appendID appends events.NotificationID(userID, sku, region, episode,
// channel) without allocating: the same sha256 over the same bytes
// ("notification|<user>|<sku>|<region>|<episode>|<channel>", first 16 bytes
// in hex); a test holds the two equal.
func (e *Encoder) appendID(buf []byte, userID, channel string) []byte {
	in := append(e.idIn[:0], "notification|"...)
	in = append(in, userID...)
	in = append(in, e.idTail...)
	in = append(in, channel...)
	e.idIn = in
	sum := sha256.Sum256(in)
	return hex.AppendEncode(buf, sum[:16])
}

// Append appends the notification of userID on channel, which must belong
// to the Message the Encoder was made for, to buf.
func (e *Encoder) Append(buf []byte, m *Message, userID, channel string, p *Preferences) []byte {
	buf = append(buf, `{"notification_id":"`...)
	buf = e.appendID(buf, userID, channel)
	buf = append(buf, `","user_id":`...)
	buf = appendString(buf, userID)
	buf = append(buf, `,"channel":`...)
	buf = appendString(buf, channel)
	buf = append(buf, e.shared...)
	if p != nil {
		if p.Locale != "" {
			buf = append(buf, `,"locale":`...)
			buf = appendString(buf, p.Locale)
		}
		if p.TimeZone != "" {
			buf = append(buf, `,"time_zone":`...)
			buf = appendString(buf, p.TimeZone)
		}
		if p.QuietHours != nil {
			buf = append(buf, `,"quiet_hours":{"start":`...)
			buf = appendString(buf, p.QuietHours.Start)
			buf = append(buf, `,"end":`...)
			buf = appendString(buf, p.QuietHours.End)
			buf = append(buf, '}')
		}
		if c := p.Contacts[channel]; c != "" {
			buf = append(buf, `,"contact":`...)
			buf = appendString(buf, c)
		}
		// Only users with devices pay for this: the kind test is all the
		// others cost.
		if len(p.Devices) > 0 {
			if kind := events.DeviceKindOf(channel); kind != "" {
				buf = appendDevices(buf, p.Devices, kind)
			}
		}
	}
	return append(buf, '}')
}
