package render_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backinstock/services/gateway/internal/render"
	"backinstock/topics/events"
)

func notification(locale string) events.Notification {
	return events.Notification{
		NotificationID: events.NotificationID("u1", "SKU-1", "eu-west-1", 2, "email"),
		RestockEventID: events.RestockEventID("SKU-1", "eu-west-1", 2),
		UserID:         "u1", SKU: "SKU-1", Region: "eu-west-1", Channel: "email", Episode: 2,
		Title: "Kettle <green>", Body: "Kettle <green> is back in stock at 19.99.", URL: "https://shop.example/p/SKU-1?a=1&b=2",
		CreatedAt: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Locale: locale, Contact: "a@example.com",
	}
}

// write lays out an override directory: path -> content.
func write(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, body := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuiltInTemplatesPerLocale(t *testing.T) {
	s, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		locale, want, subject, textHas string
	}{
		{"en-US", "en", "Back in stock: Kettle <green>", "Kettle <green> is back in stock at 19.99."},
		{"de-AT", "de", "Wieder da: Kettle <green>", "ist wieder auf Lager"},
		{"DE", "de", "Wieder da: Kettle <green>", "Jetzt sichern: https://shop.example/p/SKU-1?a=1&b=2"},
		{"fr-FR", "en", "Back in stock: Kettle <green>", "Get it while it lasts: https://shop.example/p/SKU-1?a=1&b=2"},
		{"", "en", "Back in stock: Kettle <green>", "You asked us to tell you"},
	}
	for _, c := range cases {
		t.Run(c.locale, func(t *testing.T) {
			e, err := s.Email(notification(c.locale), render.Links{})
			if err != nil {
				t.Fatal(err)
			}
			if e.Locale != c.want || e.Subject != c.subject || !strings.Contains(e.Text, c.textHas) {
				t.Errorf("got locale %q subject %q text %q", e.Locale, e.Subject, e.Text)
			}
			// HTML escapes what the text part shows as is.
			if !strings.Contains(e.HTML, "Kettle &lt;green&gt;") || strings.Contains(e.HTML, "<green>") {
				t.Errorf("HTML part not escaped: %s", e.HTML)
			}
			if !strings.Contains(e.HTML, `href="https://shop.example/p/SKU-1?a=1&amp;b=2"`) {
				t.Errorf("HTML part lacks the product link: %s", e.HTML)
			}
		})
	}
	if got := strings.Join(s.Locales(), ","); got != "de,en" {
		t.Errorf("locales %s", got)
	}
}

func TestSubjectIsOneLine(t *testing.T) {
	s, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	n := notification("en")
	n.Title = "Kettle\n  green\tlarge"
	e, err := s.Email(n, render.Links{})
	if err != nil || e.Subject != "Back in stock: Kettle green large" {
		t.Errorf("subject %q, %v", e.Subject, err)
	}
}

func TestOverrides(t *testing.T) {
	dir := write(t, map[string]string{
		"email/en/subject.txt": "{{.Title}} — restocked",
		"email/fr/subject.txt": "De retour : {{.Title}}",
		"email/fr/body.html":   "<p>{{.Title}} est de retour. <a href=\"{{.URL}}\">Voir</a></p>",
		"email/fr/body.txt":    "{{.Title}} est de retour : {{.URL}}",
		".DS_Store":            "ignored",
		"email/.keep":          "ignored",
	})
	s, err := render.Load(dir, "en")
	if err != nil {
		t.Fatal(err)
	}
	en, err := s.Email(notification("en-GB"), render.Links{})
	if err != nil || en.Subject != "Kettle <green> — restocked" || !strings.Contains(en.Text, "You asked us") {
		t.Errorf("en with its subject overridden: %+v, %v", en, err)
	}
	fr, err := s.Email(notification("fr-CA"), render.Links{})
	if err != nil || fr.Locale != "fr" || fr.Subject != "De retour : Kettle <green>" {
		t.Errorf("fr added: %+v, %v", fr, err)
	}
	if got := strings.Join(s.Locales(), ","); got != "de,en,fr" {
		t.Errorf("locales %s", got)
	}
}

// TestBadTemplatesStopTheStart: each mistake is refused when the set loads,
// naming the file (or the folder that lacks one).
func TestBadTemplatesStopTheStart(t *testing.T) {
	cases := []struct {
		name   string
		files  map[string]string
		locale string
		want   []string
	}{
		{"parse error", map[string]string{"email/en/body.txt": "{{.Title"}, "en",
			[]string{filepath.Join("email", "en", "body.txt"), "unclosed action"}},
		{"unknown field", map[string]string{"email/en/body.html": "<p>{{.Colour}}</p>"}, "en",
			[]string{filepath.Join("email", "en", "body.html"), "can't evaluate field Colour", "on a sample notification"}},
		{"empty subject", map[string]string{"email/en/subject.txt": "{{/* nothing */}}  "}, "en",
			[]string{filepath.Join("email", "en", "subject.txt"), "renders an empty subject"}},
		{"missing part", map[string]string{"email/it/subject.txt": "x", "email/it/body.txt": "y"}, "en",
			[]string{"locale it", "missing body.html", filepath.Join("email", "it")}},
		{"unknown part", map[string]string{"email/en/body.htm": "x"}, "en",
			[]string{filepath.Join("email", "en", "body.htm"), `unknown part "body.htm"`}},
		{"unknown kind", map[string]string{"fax/en/body.txt": "x"}, "en",
			[]string{"fax", `unknown folder "fax" (templates exist for email, push, sms)`}},
		{"sms part of email", map[string]string{"sms/en/body.html": "x"}, "en",
			[]string{filepath.Join("sms", "en", "body.html"), `unknown part "body.html" (want body.txt)`}},
		{"push without title", map[string]string{"push/it/body.txt": "x"}, "en",
			[]string{"push templates of locale it", "missing title.txt"}},
		{"sms too long", map[string]string{"sms/en/body.txt": "{{printf \"%01700d\" .Episode}}"}, "en",
			[]string{filepath.Join("sms", "en", "body.txt"), "SMS segments; at most 10", "on a sample notification"}},
		{"bad locale", map[string]string{"email/english/body.txt": "x"}, "en",
			[]string{filepath.Join("email", "english"), `"english" is not a BCP 47 locale`}},
		{"file where a locale goes", map[string]string{"email/body.txt": "x"}, "en",
			[]string{filepath.Join("email", "body.txt"), "want a folder per locale"}},
		{"default locale without templates", map[string]string{}, "pt",
			[]string{`default locale "pt" has no email templates (have de, en)`, `default locale "pt" has no sms templates`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := render.Load(write(t, c.files), c.locale)
			if err == nil {
				t.Fatal("Load accepted it")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := render.Load(filepath.Join(t.TempDir(), "absent"), "en"); err == nil || !strings.Contains(err.Error(), "templates dir") {
		t.Errorf("missing directory: %v", err)
	}
}

// TestTemplateFailingOnOneRecord: a template that passes the sample can
// still fail on a record; the error names the file, and the set goes on
// rendering other records.
func TestTemplateFailingOnOneRecord(t *testing.T) {
	dir := write(t, map[string]string{"email/en/body.txt": `{{if eq .SKU "BAD"}}{{index .Title 500}}{{end}}{{.Title}}`})
	s, err := render.Load(dir, "en")
	if err != nil {
		t.Fatal(err)
	}
	bad := notification("en")
	bad.SKU = "BAD"
	if _, err := s.Email(bad, render.Links{}); err == nil || !strings.Contains(err.Error(), filepath.Join("email", "en", "body.txt")) {
		t.Errorf("bad record: %v", err)
	}
	if _, err := s.Email(notification("en"), render.Links{}); err != nil {
		t.Errorf("good record: %v", err)
	}
}

func TestSMS(t *testing.T) {
	s, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	n := notification("de-DE")
	n.Title, n.URL = "Wasserkocher grün", "https://shop.example/p/1"
	m, err := s.SMS(n, render.Links{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Text != "Wasserkocher grün ist wieder da: https://shop.example/p/1" || m.Encoding != render.EncodingGSM7 || m.Segments != 1 || m.Locale != "de" {
		t.Errorf("got %+v", m)
	}
	cases := []struct {
		title, enc string
		segments   int
	}{
		{strings.Repeat("a", 160-len(" is back in stock: https://shop.example/p/1")), render.EncodingGSM7, 1},
		{strings.Repeat("a", 161-len(" is back in stock: https://shop.example/p/1")), render.EncodingGSM7, 2},
		// The extension table costs two septets: 58 braces and the 43
		// characters after them are 159.
		{strings.Repeat("{", 58), render.EncodingGSM7, 1},
		{strings.Repeat("{", 59), render.EncodingGSM7, 2},
		// One character outside GSM-7 makes the whole text UCS-2.
		{"Kettle ✓", render.EncodingUCS2, 1},
		{strings.Repeat("ç", 70-len(" is back in stock: https://shop.example/p/1")), render.EncodingUCS2, 1},
		{strings.Repeat("ç", 71-len(" is back in stock: https://shop.example/p/1")), render.EncodingUCS2, 2},
		// An emoji is two UTF-16 units.
		{strings.Repeat("😀", 100), render.EncodingUCS2, 4},
	}
	for _, c := range cases {
		n := notification("en")
		n.Title, n.URL = c.title, "https://shop.example/p/1"
		m, err := s.SMS(n, render.Links{})
		if err != nil || m.Encoding != c.enc || m.Segments != c.segments {
			t.Errorf("title %q: %s in %d segments (%v), want %s in %d", c.title, m.Encoding, m.Segments, err, c.enc, c.segments)
		}
	}
	long := notification("en")
	long.Title = strings.Repeat("😀", 200)
	long.URL = "https://shop.example/" + strings.Repeat("p", 600)
	if _, err := s.SMS(long, render.Links{}); err == nil || !strings.Contains(err.Error(), "at most 10") {
		t.Errorf("an SMS beyond 10 segments: %v", err)
	}
}

func TestPush(t *testing.T) {
	s, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.Push(notification("en-US"), render.Links{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Title != "Back in stock: Kettle <green>" || p.Body != "Kettle <green> is back in stock at 19.99." || p.URL != "https://shop.example/p/SKU-1?a=1&b=2" || p.Locale != "en" {
		t.Errorf("got %+v", p)
	}
	de, err := s.Push(notification("de"), render.Links{})
	if err != nil || de.Title != "Wieder da: Kettle <green>" {
		t.Errorf("de: %+v, %v", de, err)
	}
	dir := write(t, map[string]string{"push/en/title.txt": "{{.Title}}\n\n  now", "push/fr/title.txt": "De retour", "push/fr/body.txt": "{{.Title}}"})
	s, err = render.Load(dir, "en")
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := s.Push(notification("en"), render.Links{}); p.Title != "Kettle <green> now" {
		t.Errorf("title not folded to one line: %q", p.Title)
	}
	if p, _ := s.Push(notification("fr-CA"), render.Links{}); p.Title != "De retour" || p.Locale != "fr" {
		t.Errorf("fr override: %+v", p)
	}
	if e, _ := s.Email(notification("fr-CA"), render.Links{}); e.Locale != "en" {
		t.Errorf("push-only locale fr changed the email's locale: %s", e.Locale)
	}
}

// TestTrackedLinks: with a tracker every kind links to the product only
// through the tracked link (the email's HTML and text, the SMS, the push
// body and its tap target); a tracker that fails is the render's error.
func TestTrackedLinks(t *testing.T) {
	s, err := render.Load("", "en")
	if err != nil {
		t.Fatal(err)
	}
	const tracked = "https://e.shop.example/c/c1.k1.token"
	var seen []string
	s.Track(func(n events.Notification) (string, error) {
		seen = append(seen, n.NotificationID)
		return tracked, nil
	})
	n := notification("en")
	e, err := s.Email(n, render.Links{})
	if err != nil {
		t.Fatal(err)
	}
	sms, err := s.SMS(n, render.Links{})
	if err != nil {
		t.Fatal(err)
	}
	push, err := s.Push(n, render.Links{})
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"email html": e.HTML, "email text": e.Text, "sms": sms.Text, "push tap": push.URL} {
		if !strings.Contains(text, tracked) {
			t.Errorf("%s lacks the tracked link: %s", name, text)
		}
		if strings.Contains(text, "shop.example/p/SKU-1") {
			t.Errorf("%s still links to the product itself: %s", name, text)
		}
	}
	if len(seen) != 3 || seen[0] != n.NotificationID {
		t.Errorf("tracker called for %v", seen)
	}

	s.Track(func(events.Notification) (string, error) { return "", errors.New("no key") })
	if _, err := s.Email(n, render.Links{}); err == nil || !strings.Contains(err.Error(), "tracked link: no key") {
		t.Errorf("failing tracker: %v", err)
	}
}
