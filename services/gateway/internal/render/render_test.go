package render_test

import (
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
		{"unknown channel", map[string]string{"sms/en/body.txt": "x"}, "en",
			[]string{"sms", `unknown channel folder "sms"`}},
		{"bad locale", map[string]string{"email/english/body.txt": "x"}, "en",
			[]string{filepath.Join("email", "english"), `"english" is not a BCP 47 locale`}},
		{"file where a locale goes", map[string]string{"email/body.txt": "x"}, "en",
			[]string{filepath.Join("email", "body.txt"), "want a folder per locale"}},
		{"default locale without templates", map[string]string{}, "pt",
			[]string{`default locale "pt" has no email templates (have de, en)`}},
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
