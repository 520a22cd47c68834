package render

import (
	"fmt"
	"strings"
	"unicode/utf16"

	"backinstock/topics/events"
)

// SMS is one rendered text message.
type SMS struct {
	Text string
	// Encoding is how the network carries it: EncodingGSM7 when every
	// character is in the GSM 03.38 alphabet, EncodingUCS2 otherwise.
	Encoding string
	// Segments is how many SMS the network bills it as.
	Segments int
	Locale   string
}

// The encodings of an SMS.
const (
	EncodingGSM7 = "GSM-7"
	EncodingUCS2 = "UCS-2"
)

// MaxSMSSegments bounds a concatenated SMS: Twilio refuses a body over
// 1,600 characters (10 segments of 160), and carriers drop longer chains.
const MaxSMSSegments = 10

// The GSM 03.38 default alphabet (one septet each) and its extension table
// (an escape plus one septet: two each). ESC itself is not text.
const (
	gsm7Basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsm7Extension = "\f^{}\\[~]|€"
)

// smsLength says how text travels: GSM-7 in septets when it can, UCS-2 in
// UTF-16 code units otherwise (an emoji is two), and how many segments
// that makes. One SMS carries 160 septets or 70 UCS-2 units; a
// concatenated one spends a header per segment, leaving 153 or 67.
func smsLength(text string) (encoding string, units, segments int) {
	encoding = EncodingGSM7
	for _, r := range text {
		switch {
		case strings.ContainsRune(gsm7Basic, r):
			units++
		case strings.ContainsRune(gsm7Extension, r):
			units += 2
		default:
			encoding = EncodingUCS2
		}
	}
	single, part := 160, 153
	if encoding == EncodingUCS2 {
		units = len(utf16.Encode([]rune(text)))
		single, part = 70, 67
	}
	if units <= single {
		return encoding, units, 1
	}
	return encoding, units, (units + part - 1) / part
}

func (t *compiled) sms(d Data) (SMS, error) {
	out, err := t.run(PartText, d)
	if err != nil {
		return SMS{}, err
	}
	// Trailing newlines of a template file would cost characters.
	text := strings.TrimSpace(out)
	if text == "" {
		return SMS{}, fmt.Errorf("template %s: renders an empty SMS", t.files[PartText])
	}
	enc, units, segments := smsLength(text)
	if segments > MaxSMSSegments {
		return SMS{}, fmt.Errorf("template %s: renders %d %s characters, %d SMS segments; at most %d", t.files[PartText], units, enc, segments, MaxSMSSegments)
	}
	return SMS{Text: text, Encoding: enc, Segments: segments, Locale: d.Locale}, nil
}

// SMS renders n's text message in its locale (the same fallback as Email).
// A text longer than MaxSMSSegments segments is an error (permanent: the
// record, not the provider, is at fault).
func (s *Set) SMS(n events.Notification, links Links) (SMS, error) {
	t, d, err := s.pick(KindSMS, n, links)
	if err != nil {
		return SMS{}, err
	}
	return t.sms(d)
}
