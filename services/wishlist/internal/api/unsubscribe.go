package api

import (
	"errors"
	"html/template"
	"net/http"
	"slices"
	"strings"

	"backinstock/services/wishlist/internal/wishes"
	"backinstock/shared/httpapi"
	"backinstock/topics/unsubscribe"
)

// The one-click unsubscribe routes (RFC 8058) are public: the signed token
// in the query is the authorisation (topics/unsubscribe). GET only shows a
// confirmation page, because mail scanners and link previews follow links;
// POST with the body List-Unsubscribe=One-Click, which mail clients send
// and the page's button sends too, unsubscribes. Both answer small HTML
// pages, errors included (a person reads them), with the error code in the
// page; a store that does not answer is the API's JSON 503.

var unsubPage = template.Must(template.New("unsubscribe").Parse(`<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="robots" content="noindex"><title>{{.Heading}}</title></head>
<body style="font-family: sans-serif; line-height: 1.5; max-width: 36em; margin: 2em auto;">
<h1 style="font-size: 1.3em;">{{.Heading}}</h1>
<p>{{.Text}}</p>
{{- if .Code}}
<p style="color: #666; font-size: 0.85em;">Error code: <code>{{.Code}}</code></p>
{{- end}}
{{- if .Confirm}}
<form method="post">
<input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button>
</form>
{{- end}}
</body>
</html>
`))

type unsubView struct {
	Heading, Text, Code string
	// Confirm adds the button; the form has no action, so it posts to the
	// page's own URL, token included, behind whatever prefix serves it.
	Confirm bool
}

func writePage(w http.ResponseWriter, status int, v unsubView) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	// The token is the link's authority: keep it out of caches and out of
	// the Referer of anything the page links to.
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_ = unsubPage.Execute(w, v)
}

// htmlErrors answers h's 4xx errors as a page naming the problem; others
// (a store that failed: 503) go to the router as usual.
func htmlErrors(h httpapi.HandlerFunc) httpapi.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		err := h(w, r)
		var e *httpapi.Error
		if errors.As(err, &e) && e.Status < 500 {
			writePage(w, e.Status, unsubView{Heading: "This unsubscribe link does not work", Text: e.Message, Code: e.Code})
			return nil
		}
		return err
	}
}

// claim verifies the request's token: malformed is a 400, a token this
// API cannot trust (unknown key, wrong signature) a 403.
func (a *API) claim(r *http.Request) (unsubscribe.Claim, error) {
	if len(a.o.Unsubscribe) == 0 {
		return unsubscribe.Claim{}, httpapi.Errorf(http.StatusNotFound, "not_found", "one-click unsubscribe is not enabled here (UNSUBSCRIBE_KEYS is not set)")
	}
	q := r.URL.Query()
	if !q.Has(unsubscribe.Param) {
		return unsubscribe.Claim{}, httpapi.Errorf(http.StatusBadRequest, "bad_token", "the link has no %s parameter", unsubscribe.Param)
	}
	c, err := a.o.Unsubscribe.Verify(q.Get(unsubscribe.Param))
	switch {
	case errors.Is(err, unsubscribe.ErrMalformed):
		return c, httpapi.Errorf(http.StatusBadRequest, "bad_token", "%v", err)
	case errors.Is(err, unsubscribe.ErrUnknownKey):
		return c, httpapi.Errorf(http.StatusForbidden, "unknown_key", "%v (the link may be too old)", err)
	case err != nil:
		return c, httpapi.Errorf(http.StatusForbidden, "bad_signature", "%v", err)
	}
	return c, nil
}

func scopeText(scope string) string {
	if scope == unsubscribe.ScopeAll {
		return "all back-in-stock notifications"
	}
	return "back-in-stock notifications by " + scope
}

func (a *API) unsubscribeForm(w http.ResponseWriter, r *http.Request) error {
	c, err := a.claim(r)
	if err != nil {
		return err
	}
	writePage(w, http.StatusOK, unsubView{Heading: "Unsubscribe?",
		Text: "Stop " + scopeText(c.Scope) + " for " + c.UserID + "?", Confirm: true})
	return nil
}

// unsubscribe applies the token's claim: scope all sets unsubscribed, a
// channel joins opt_out. It changes the stored preferences in one
// optimistic transaction (Service.UpdatePrefs), so a concurrent device
// registration or preferences PUT is not lost.
func (a *API) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	c, err := a.claim(r)
	if err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, a.o.MaxBodyBytes)
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/form-data") {
		err = r.ParseMultipartForm(a.o.MaxBodyBytes)
	} else {
		err = r.ParseForm()
	}
	if err != nil {
		return httpapi.BadRequest("read the form: %v", err)
	}
	// Only the body counts (RFC 8058): the token is the query's.
	if got := r.PostForm.Get("List-Unsubscribe"); got != "One-Click" {
		return httpapi.BadRequest("the body must be the form List-Unsubscribe=One-Click (RFC 8058), got List-Unsubscribe=%q", got)
	}
	_, err = a.svc.UpdatePrefs(r.Context(), c.UserID, func(p *wishes.Preferences) (*wishes.Preferences, bool, error) {
		if p == nil {
			p = &wishes.Preferences{}
		}
		switch {
		case p.Unsubscribed:
			return p, false, nil
		case c.Scope == unsubscribe.ScopeAll:
			p.Unsubscribed = true
		case slices.Contains(p.OptOut, c.Scope):
			return p, false, nil
		default:
			p.OptOut = append(p.OptOut, c.Scope)
		}
		return p, true, wishes.CheckPreferences(c.UserID, *p)
	})
	if err != nil {
		return err
	}
	writePage(w, http.StatusOK, unsubView{Heading: "You are unsubscribed",
		Text: c.UserID + " will get no more " + scopeText(c.Scope) + ". Wishlist entries stay; your preferences can turn notifications back on."})
	return nil
}
