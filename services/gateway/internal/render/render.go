// Package render turns a notification into what a channel shows: for email
// a subject, an HTML part and a plain-text part; for SMS one text; for push
// (app and web) a title and a body — in the recipient's locale.
//
// The templates are built in (templates/<kind>/<locale>/<part>, embedded)
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

// The parts of a message, as file names in a locale's folder. .html files
// are html/template (values escaped for HTML), the others text/template.
const (
	PartSubject = "subject.txt" // email; rendered to one line
	PartHTML    = "body.html"   // email
	PartText    = "body.txt"    // email's plain-text part, the SMS, the push body
	PartTitle   = "title.txt"   // push; rendered to one line
)

// The kinds of templates: a folder each under the templates root.
const (
	KindEmail = "email"
	KindSMS   = "sms"
	KindPush  = "push" // app and web push share them
)

// kindParts lists each kind's parts, in the order errors report them.
var kindParts = map[string][]string{
	KindEmail: {PartSubject, PartHTML, PartText},
	KindSMS:   {PartText},
	KindPush:  {PartTitle, PartText},
}

// kindNames is kindParts' keys in order, for messages.
var kindNames = []string{KindEmail, KindPush, KindSMS}

var localeRE = regexp.MustCompile(events.LocalePattern)

// Data is what a template sees.
type Data struct {
	// Title is the product's title, Body the notification's sentence about
	// it (with the price when the restock had one), URL the product page.
	Title, Body, URL string
	// Product repeats the product as one value. ImageURL and Price are
	// empty until the notification carries them.
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
	// ProductURL is the product page itself, tracked link or not (.URL is
	// the tracked link when the gateway tracks clicks).
	ProductURL string
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

// Set holds every kind's templates in every locale.
type Set struct {
	defaultLocale string
	kinds         map[string]map[string]*compiled // kind -> lower-case locale
	// track, when set, turns the product URL every template sees into
	// the notification's tracked link.
	track Tracker
}

// Tracker returns the tracked link that leads to n's product (the
// engagement service's /c/<token>, topics/clicklink).
type Tracker func(n events.Notification) (string, error)

// Track makes every message of every kind link to the product through t:
// .URL and .Product.URL become the tracked link, and so does a push's tap
// target. Without it messages link to the product URL itself. Call it
// before the set is used.
func (s *Set) Track(t Tracker) { s.track = t }

// compiled is one locale's templates of one kind.
type compiled struct {
	text map[string]*texttemplate.Template
	html map[string]*htmltemplate.Template
	// files names where each part came from, for errors.
	files map[string]string
}

type source struct {
	name string // "builtin:email/en/subject.txt" or the override's path
	body []byte
}

// sources is what collect gathers: kind -> locale -> part.
type sources map[string]map[string]map[string]source

// Load reads the built-in templates, applies the overrides in dir ("" for
// none) and checks every template: it parses and renders a sample
// notification, and every locale of a kind has all its parts.
// defaultLocale is what a notification without a locale, or with one
// nobody wrote templates for, gets; every kind needs it. Errors name the
// file.
func Load(dir, defaultLocale string) (*Set, error) {
	src := sources{}
	sub, err := fs.Sub(builtin, "templates")
	if err != nil {
		return nil, err
	}
	if err := collect(sub, "builtin:", src); err != nil {
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
		if err := collect(os.DirFS(dir), dir+string(filepath.Separator), src); err != nil {
			return nil, err
		}
	}
	s := &Set{defaultLocale: strings.ToLower(defaultLocale), kinds: map[string]map[string]*compiled{}}
	var errs []error
	for _, kind := range kindNames {
		if _, ok := src[kind][s.defaultLocale]; !ok {
			errs = append(errs, fmt.Errorf("default locale %q has no %s templates (have %s)", defaultLocale, kind, strings.Join(sortedKeys(src[kind]), ", ")))
			continue
		}
		s.kinds[kind] = map[string]*compiled{}
		for _, locale := range sortedKeys(src[kind]) {
			t, err := compile(kind, locale, src[kind][locale])
			if err != nil {
				errs = append(errs, err)
				continue
			}
			s.kinds[kind][locale] = t
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

// collect reads fsys (a templates tree) into src, later calls replacing
// earlier ones part by part. Anything but <kind>/<locale>/<part> is
// refused, so a misspelt file does not silently leave the built-in in
// place; dot files are skipped.
func collect(fsys fs.FS, prefix string, src sources) error {
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
		kind := parts[0]
		want, known := kindParts[kind]
		switch {
		case !known:
			return fmt.Errorf("template %s: unknown folder %q (templates exist for %s)", name, kind, strings.Join(kindNames, ", "))
		case len(parts) == 1:
			if !d.IsDir() {
				return fmt.Errorf("template %s: want a folder %s/<locale>/", name, kind)
			}
		case len(parts) == 2:
			if !d.IsDir() {
				return fmt.Errorf("template %s: want a folder per locale, e.g. %s/en/", name, kind)
			}
			if !localeRE.MatchString(parts[1]) {
				return fmt.Errorf("template %s: %q is not a BCP 47 locale such as en or de-AT", name, parts[1])
			}
		case len(parts) == 3 && !d.IsDir():
			if !slices.Contains(want, parts[2]) {
				return fmt.Errorf("template %s: unknown part %q (want %s)", name, parts[2], strings.Join(want, ", "))
			}
			body, err := fs.ReadFile(fsys, p)
			if err != nil {
				return fmt.Errorf("template %s: %w", name, err)
			}
			locale := strings.ToLower(parts[1])
			if src[kind] == nil {
				src[kind] = map[string]map[string]source{}
			}
			if src[kind][locale] == nil {
				src[kind][locale] = map[string]source{}
			}
			src[kind][locale][parts[2]] = source{name: name, body: body}
		default:
			return fmt.Errorf("template %s: want %s/<locale>/<part>", name, kind)
		}
		return nil
	})
}

func compile(kind, locale string, parts map[string]source) (*compiled, error) {
	t := &compiled{text: map[string]*texttemplate.Template{}, html: map[string]*htmltemplate.Template{}, files: map[string]string{}}
	want := kindParts[kind]
	var errs []error
	for _, part := range want {
		src, ok := parts[part]
		if !ok {
			var where []string
			for _, s := range parts {
				where = append(where, path.Dir(filepath.ToSlash(s.name)))
			}
			slices.Sort(where)
			errs = append(errs, fmt.Errorf("%s templates of locale %s (%s): missing %s (each locale needs %s)", kind, locale, strings.Join(slices.Compact(where), ", "), part, strings.Join(want, ", ")))
			continue
		}
		t.files[part] = src.name
		var err error
		if strings.HasSuffix(part, ".html") {
			t.html[part], err = htmltemplate.New(src.name).Option("missingkey=error").Parse(string(src.body))
		} else {
			t.text[part], err = texttemplate.New(src.name).Option("missingkey=error").Parse(string(src.body))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("template %s: %w", src.name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	// A template that parses can still fail when it runs (a field that
	// does not exist, a call on a missing value), or render what its
	// channel cannot carry: run it once now.
	d := sampleData(locale)
	var err error
	switch kind {
	case KindEmail:
		_, err = t.email(d)
	case KindSMS:
		_, err = t.sms(d)
	case KindPush:
		_, err = t.push(d)
	}
	if err != nil {
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
		ProductURL: n.URL,
	}
}

// run executes part on d.
func (t *compiled) run(part string, d Data) (string, error) {
	var b bytes.Buffer
	var err error
	if h, ok := t.html[part]; ok {
		err = h.Execute(&b, d)
	} else {
		err = t.text[part].Execute(&b, d)
	}
	if err != nil {
		return "", fmt.Errorf("template %s: %w", t.files[part], err)
	}
	return b.String(), nil
}

// line runs part and folds it into one non-empty line: a subject or a push
// title is one line whatever the title holds (newlines, runs of blanks).
func (t *compiled) line(part string, d Data) (string, error) {
	out, err := t.run(part, d)
	if err != nil {
		return "", err
	}
	s := strings.Join(strings.Fields(out), " ")
	if s == "" {
		return "", fmt.Errorf("template %s: renders an empty %s", t.files[part], strings.TrimSuffix(part, ".txt"))
	}
	return s, nil
}

func (t *compiled) email(d Data) (Email, error) {
	subject, err := t.line(PartSubject, d)
	if err != nil {
		return Email{}, err
	}
	html, err := t.run(PartHTML, d)
	if err != nil {
		return Email{}, err
	}
	text, err := t.run(PartText, d)
	if err != nil {
		return Email{}, err
	}
	return Email{Subject: subject, HTML: html, Text: text, Locale: d.Locale}, nil
}

// Links are the per-recipient links a message carries besides the
// notification's own.
type Links struct {
	// Unsubscribe is the one-click unsubscribe URL; empty: none.
	Unsubscribe string
}

// Email renders n's email in its locale: the exact tag (de-at), then its
// language (de), then the default locale.
func (s *Set) Email(n events.Notification, links Links) (Email, error) {
	t, d, err := s.pick(KindEmail, n, links)
	if err != nil {
		return Email{}, err
	}
	return t.email(d)
}

// pick finds kind's templates for n's locale and the data they see.
func (s *Set) pick(kind string, n events.Notification, links Links) (*compiled, Data, error) {
	locale := s.locale(kind, n.Locale)
	d := dataOf(n, locale)
	d.UnsubscribeURL = links.Unsubscribe
	if s.track != nil {
		u, err := s.track(n)
		if err != nil {
			return nil, Data{}, fmt.Errorf("tracked link: %w", err)
		}
		d.URL, d.Product.URL = u, u
	}
	return s.kinds[kind][locale], d, nil
}

// Locale is the locale whose email templates a notification in tag gets.
func (s *Set) Locale(tag string) string { return s.locale(KindEmail, tag) }

func (s *Set) locale(kind, tag string) string {
	have := s.kinds[kind]
	tag = strings.ToLower(tag)
	if _, ok := have[tag]; ok {
		return tag
	}
	if lang, _, ok := strings.Cut(tag, "-"); ok {
		if _, ok := have[lang]; ok {
			return lang
		}
	}
	return s.defaultLocale
}

// Locales lists the locales that have templates of any kind.
func (s *Set) Locales() []string {
	var out []string
	for _, byLocale := range s.kinds {
		for l := range byLocale {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
