package render

import (
	"fmt"
	"strings"

	"backinstock/topics/events"
)

// Push is one rendered push notification, for the app (FCM) and the
// browser (Web Push) alike.
type Push struct {
	Title, Body string
	// URL is where a tap leads (the deep link): the product page.
	URL string
	// ImageURL is the product's image; empty until notifications carry one.
	ImageURL string
	Locale   string
}

// MaxPushBytes bounds title, body and link together: a Web Push record is
// at most 4,096 bytes encrypted (RFC 8291: 3,993 bytes of plaintext), FCM's
// payload 4,096, and both wrap ours in JSON.
const MaxPushBytes = 3000

func (t *compiled) push(d Data) (Push, error) {
	title, err := t.line(PartTitle, d)
	if err != nil {
		return Push{}, err
	}
	out, err := t.run(PartText, d)
	if err != nil {
		return Push{}, err
	}
	body := strings.TrimSpace(out)
	if body == "" {
		return Push{}, fmt.Errorf("template %s: renders an empty push body", t.files[PartText])
	}
	p := Push{Title: title, Body: body, URL: d.URL, ImageURL: d.Product.ImageURL, Locale: d.Locale}
	if n := len(p.Title) + len(p.Body) + len(p.URL) + len(p.ImageURL); n > MaxPushBytes {
		return Push{}, fmt.Errorf("templates %s, %s: render %d bytes of push; at most %d", t.files[PartTitle], t.files[PartText], n, MaxPushBytes)
	}
	return p, nil
}

// Push renders n's push notification in its locale (the same fallback as
// Email).
func (s *Set) Push(n events.Notification, links Links) (Push, error) {
	t, d, err := s.pick(KindPush, n, links)
	if err != nil {
		return Push{}, err
	}
	return t.push(d)
}
