// Package render turns a notification into what a channel shows: for email
// a subject, an HTML part and a plain-text part, in the recipient's locale.
//
// The templates are built in (templates/<channel>/<locale>/<part>, embedded)
// and may be overridden, file by file or with whole new locales, from a
// directory of the same layout (GATEWAY_TEMPLATES_DIR). Every template is
// parsed and run on a sample notification when the set loads, so a broken
// one stops the gateway at start, naming the file, instead of failing every
// notification of its locale at run time.
package render

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	texttemplate "text/template"
	"time"

	"backinstock/topics/events"
)

//go:embed templates
var builtin embed.FS

// The parts of an email, as file names in a locale's folder.
const (
	PartSubject = "subject.txt" // text/template; rendered to one line
	PartHTML    = "body.html"   // html/template: values are escaped for HTML
	PartText    = "body.txt"    // text/template
)

// emailParts lists them in the order errors report them.
var emailParts = []string{PartSubject, PartHTML, PartText}

// channelEmail is the one channel with templates so far; sms and push
// templates join it when their providers do.
const channelEmail = "email"

var localeRE = regexp.MustCompile(events.LocalePattern)

// Data is what a template sees.
type Data struct {
	// Title is the product's title, Body the notification's sentence about
	// it (with the price when the restock had one), URL the product page.
	Title, Body, URL string
	// Product repeats the product as one value. ImageURL and Price are
	// empty until the notification carries them (issue 14, later step).
	Product Product
	SKU     string
	UserID  string
	Region  string
	// Locale is the locale whose templates are rendering.
	Locale         string
	NotificationID string
	Episode        int64
	CreatedAt      time.Time
	// UnsubscribeURL is the signed one-click unsubscribe link (the one the
	// List-Unsubscribe header carries); empty when the gateway signs none.
	UnsubscribeURL string
}

// Product is the product a notification is about.
type Product struct {
	Title, URL, ImageURL, Price string
}

// Email is one rendered email.
type Email struct {
	Subject, HTML, Text string
	// Locale is the locale whose templates were used.
	Locale string
}

// Set holds every locale's templates.
type Set struct {
	defaultLocale string
	email         map[string]*emailTemplates // by lower-case locale
}

type emailTemplates struct {
	subject, text *texttemplate.Template
	html          *htmltemplate.Template
	// files names where each part came from, for errors.
	files map[string]string
}

type source struct {
	name string // "builtin:email/en/subject.txt" or the override's path
	body []byte
}

// Load reads the built-in templates, applies the overrides in dir ("" for
// none) and checks every template: it parses and renders a sample
// notification, and every locale has every part. defaultLocale is what a
// notification without a locale, or with one nobody wrote templates for,
// gets. Errors name the file.
func Load(dir, defaultLocale string) (*Set, error) {
	sources := map[string]map[string]source{} // locale -> part -> source
	sub, err := fs.Sub(builtin, "templates")
	if err != nil {
		return nil, err
	}
	if err := collect(sub, "builtin:", sources); err != nil {
		return nil, err
	}
	if dir != "" {
		st, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("templates dir: %w", err)
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("templates dir %s: not a directory", dir)
		}
		if err := collect(os.DirFS(dir), dir+string(filepath.Separator), sources); err != nil {
			return nil, err
		}
	}
	s := &Set{defaultLocale: strings.ToLower(defaultLocale), email: map[string]*emailTemplates{}}
	if _, ok := sources[s.defaultLocale]; !ok {
		return nil, fmt.Errorf("default locale %q has no email templates (have %s)", defaultLocale, strings.Join(sortedKeys(sources), ", "))
	}
	var errs []error
	for _, locale := range sortedKeys(sources) {
		t, err := compile(locale, sources[locale])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.email[locale] = t
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// collect reads fsys (a templates tree) into sources, later calls
// replacing earlier ones part by part. Anything but
// email/<locale>/<part> is refused, so a misspelt file does not silently
// leave the built-in in place; dot files are skipped.
func collect(fsys fs.FS, prefix string, sources map[string]map[string]source) error {
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		name := prefix + filepath.FromSlash(p)
		parts := strings.Split(p, "/")
		switch {
		case parts[0] != channelEmail:
			return fmt.Errorf("template %s: unknown channel folder %q (templates exist for %s only)", name, parts[0], channelEmail)
		case len(parts) == 1:
			if !d.IsDir() {
				return fmt.Errorf("template %s: want a folder %s/<locale>/", name, channelEmail)
			}
		case len(parts) == 2:
			if !d.IsDir() {
				return fmt.Errorf("template %s: want a folder per locale, e.g. %s/en/", name, channelEmail)
			}
			if !localeRE.MatchString(parts[1]) {
				return fmt.Errorf("template %s: %q is not a BCP 47 locale such as en or de-AT", name, parts[1])
			}
		case len(parts) == 3 && !d.IsDir():
			if !slices.Contains(emailParts, parts[2]) {
				return fmt.Errorf("template %s: unknown part %q (want %s)", name, parts[2], strings.Join(emailParts, ", "))
			}
			body, err := fs.ReadFile(fsys, p)
			if err != nil {
				return fmt.Errorf("template %s: %w", name, err)
			}
			locale := strings.ToLower(parts[1])
			if sources[locale] == nil {
				sources[locale] = map[string]source{}
			}
			sources[locale][parts[2]] = source{name: name, body: body}
		default:
			return fmt.Errorf("template %s: want %s/<locale>/<part>", name, channelEmail)
		}
		return nil
	})
}

func compile(locale string, parts map[string]source) (*emailTemplates, error) {
	t := &emailTemplates{files: map[string]string{}}
	var errs []error
	for _, part := range emailParts {
		src, ok := parts[part]
		if !ok {
			var where []string
			for _, s := range parts {
				where = append(where, path.Dir(filepath.ToSlash(s.name)))
			}
			slices.Sort(where)
			errs = append(errs, fmt.Errorf("templates of locale %s (%s): missing %s (each locale needs %s)", locale, strings.Join(slices.Compact(where), ", "), part, strings.Join(emailParts, ", ")))
			continue
		}
		t.files[part] = src.name
		var err error
		switch part {
		case PartHTML:
			t.html, err = htmltemplate.New(src.name).Option("missingkey=error").Parse(string(src.body))
		case PartSubject:
			t.subject, err = texttemplate.New(src.name).Option("missingkey=error").Parse(string(src.body))
		case PartText:
			t.text, err = texttemplate.New(src.name).Option("missingkey=error").Parse(string(src.body))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", src.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// A template that parses can still fail when it runs (a field that
	// does not exist, a call on a missing value): run it once now.
	if _, err := t.render(sampleData(locale)); err != nil {
		return nil, fmt.Errorf("%w (on a sample notification)", err)
	}
	return t, nil
}

// sampleData has every field set, as a real notification would.
func sampleData(locale string) Data {
	n := events.Notification{
		NotificationID: events.NotificationID("sample-user", "SAMPLE-SKU", "us-east-1", 1, events.ChannelEmail),
		RestockEventID: events.RestockEventID("SAMPLE-SKU", "us-east-1", 1),
		UserID:         "sample-user", SKU: "SAMPLE-SKU", Region: "us-east-1", Channel: events.ChannelEmail, Episode: 1,
		Title: "Sample kettle", Body: "Sample kettle is back in stock at 19.99.", URL: "https://shop.example/p/SAMPLE-SKU",
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Locale: locale, Contact: "shopper@example.com",
	}
	d := dataOf(n, locale)
	d.Product.ImageURL, d.Product.Price = "https://shop.example/i/SAMPLE-SKU.jpg", "19.99"
	d.UnsubscribeURL = "https://shop.example/unsubscribe?t=sample"
	return d
}

func dataOf(n events.Notification, locale string) Data {
	return Data{
		Title: n.Title, Body: n.Body, URL: n.URL,
		Product: Product{Title: n.Title, URL: n.URL},
		SKU:     n.SKU, UserID: n.UserID, Region: n.Region, Locale: locale,
		NotificationID: n.NotificationID, Episode: n.Episode, CreatedAt: n.CreatedAt,
	}
}

func (t *emailTemplates) render(d Data) (Email, error) {
	var subject, html, text bytes.Buffer
	if err := t.subject.Execute(&subject, d); err != nil {
		return Email{}, fmt.Errorf("template %s: %w", t.files[PartSubject], err)
	}
	if err := t.html.Execute(&html, d); err != nil {
		return Email{}, fmt.Errorf("template %s: %w", t.files[PartHTML], err)
	}
	if err := t.text.Execute(&text, d); err != nil {
		return Email{}, fmt.Errorf("template %s: %w", t.files[PartText], err)
	}
	// A subject is one header line: newlines and runs of blanks become one
	// space (a title may hold a newline).
	s := strings.Join(strings.Fields(subject.String()), " ")
	if s == "" {
		return Email{}, fmt.Errorf("template %s: renders an empty subject", t.files[PartSubject])
	}
	return Email{Subject: s, HTML: html.String(), Text: text.String(), Locale: d.Locale}, nil
}

// Links are the per-recipient links an email carries besides the
// notification's own.
type Links struct {
	// Unsubscribe is the one-click unsubscribe URL; empty: none.
	Unsubscribe string
}

// Email renders n's email in its locale: the exact tag (de-at), then its
// language (de), then the default locale.
func (s *Set) Email(n events.Notification, links Links) (Email, error) {
	locale := s.Locale(n.Locale)
	d := dataOf(n, locale)
	d.UnsubscribeURL = links.Unsubscribe
	return s.email[locale].render(d)
}

// Locale is the locale whose templates a notification in tag gets.
func (s *Set) Locale(tag string) string {
	tag = strings.ToLower(tag)
	if _, ok := s.email[tag]; ok {
		return tag
	}
	if lang, _, ok := strings.Cut(tag, "-"); ok {
		if _, ok := s.email[lang]; ok {
			return lang
		}
	}
	return s.defaultLocale
}

// Locales lists the locales that have templates.
func (s *Set) Locales() []string {
	out := make([]string, 0, len(s.email))
	for l := range s.email {
		out = append(out, l)
	}
	slices.Sort(out)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
