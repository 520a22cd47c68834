package events

import (
	"strconv"
	"unicode/utf8"
)

// Bits of the Notification fields quickNotification has seen.
const (
	qnNotificationID = 1 << iota
	qnRestockEventID
	qnUserID
	qnSKU
	qnRegion
	qnChannel
	qnEpisode
	qnTitle
	qnBody
	qnURL
	qnCreatedAt
	qnLocale
	qnTimeZone
	qnQuietHours
	qnContact

	qnRequired = qnNotificationID | qnRestockEventID | qnUserID | qnSKU | qnRegion | qnChannel |
		qnEpisode | qnTitle | qnBody | qnURL | qnCreatedAt
)

// quickNotification decodes a well-formed Notification in one pass over the
// bytes, without reflection: the notifier decodes every record it delivers,
// and quickShape followed by encoding/json cost most of its CPU.
//
// It accepts a strict subset of what quickShape + json.Unmarshal accept and,
// when it answers true, leaves n exactly as json.Unmarshal would. Anything
// else — duplicate keys, \u escapes, invalid UTF-8, leading zeros, unknown
// keys, nulls, empty optional strings, a missing required field — answers
// false, and the caller takes the general path, which decides and names the
// problem. So the semantics (and the error messages) are those of
// decodeStrict; FuzzQuickNotificationAgrees checks it.
func quickNotification(data []byte, n *Notification) bool {
	s := quickScanner{data: data}
	s.ws()
	if !s.expect('{') {
		return false
	}
	// One copy of the record; the unescaped strings are slices of it (one
	// allocation instead of one per field).
	src := string(data)
	var seen uint32
	for {
		s.ws()
		key, escaped, ok := s.str()
		if !ok || escaped || !s.expect(':') {
			return false
		}
		s.ws()
		var bit uint32
		switch string(key) {
		case "notification_id":
			bit = qnNotificationID
			n.NotificationID, ok = s.text(src, false)
		case "restock_event_id":
			bit = qnRestockEventID
			n.RestockEventID, ok = s.text(src, false)
		case "user_id":
			bit = qnUserID
			n.UserID, ok = s.text(src, false)
		case "sku":
			bit = qnSKU
			n.SKU, ok = s.text(src, false)
		case "region":
			bit = qnRegion
			n.Region, ok = s.text(src, false)
		case "channel":
			bit = qnChannel
			n.Channel, ok = s.text(src, false)
		case "episode":
			bit = qnEpisode
			n.Episode, ok = s.int64()
		case "title":
			bit = qnTitle
			n.Title, ok = s.text(src, false)
		case "body":
			bit = qnBody
			n.Body, ok = s.text(src, false)
		case "url":
			bit = qnURL
			n.URL, ok = s.text(src, false)
		case "created_at":
			bit = qnCreatedAt
			start := s.i
			if _, esc, sok := s.str(); !sok || esc {
				return false
			}
			ok = n.CreatedAt.UnmarshalJSON(s.data[start:s.i]) == nil
		case "locale":
			bit = qnLocale
			n.Locale, ok = s.text(src, true)
		case "time_zone":
			bit = qnTimeZone
			n.TimeZone, ok = s.text(src, true)
		case "contact":
			bit = qnContact
			n.Contact, ok = s.text(src, true)
		case "quiet_hours":
			bit = qnQuietHours
			n.QuietHours, ok = s.quietHours(src)
		default:
			return false
		}
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if more, ok := s.next('}'); !more {
			if !ok {
				return false
			}
			break
		}
	}
	s.ws()
	return s.i == len(s.data) && seen&qnRequired == qnRequired
}

// quietHours reads {"start": "...", "end": "..."}, both required, once each.
func (s *quickScanner) quietHours(src string) (*QuietHours, bool) {
	if !s.expect('{') {
		return nil, false
	}
	qh := &QuietHours{}
	var seenStart, seenEnd bool
	for {
		s.ws()
		key, escaped, ok := s.str()
		if !ok || escaped || !s.expect(':') {
			return nil, false
		}
		s.ws()
		switch string(key) {
		case "start":
			if seenStart {
				return nil, false
			}
			seenStart = true
			qh.Start, ok = s.text(src, false)
		case "end":
			if seenEnd {
				return nil, false
			}
			seenEnd = true
			qh.End, ok = s.text(src, false)
		default:
			return nil, false
		}
		if !ok {
			return nil, false
		}
		if more, ok := s.next('}'); !more {
			return qh, ok && seenStart && seenEnd
		}
	}
}

// text reads a JSON string as encoding/json would, for the strings it can
// read exactly: valid UTF-8 and only the one-character escapes (\" \\ \/ \b
// \f \n \r \t). A \u escape or invalid UTF-8 (which encoding/json replaces
// with U+FFFD) answers false. optional refuses "" (an empty optional string
// must be omitted). src is string(s.data): an unescaped string is a slice
// of it.
func (s *quickScanner) text(src string, optional bool) (string, bool) {
	raw, escaped, ok := s.str()
	if !ok || (optional && len(raw) == 0) || !utf8.Valid(raw) {
		return "", false
	}
	if !escaped {
		end := s.i - 1 // the closing quote
		return src[end-len(raw) : end], true
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(raw) {
			return "", false
		}
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		default:
			return "", false
		}
	}
	return string(out), true
}

// int64 reads a JSON integer: no fraction, no exponent, no leading zero.
func (s *quickScanner) int64() (int64, bool) {
	num, ok := s.integer()
	digits := num
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if !ok || (digits[0] == '0' && len(digits) > 1) {
		return 0, false
	}
	v, err := strconv.ParseInt(string(num), 10, 64)
	return v, err == nil
}
