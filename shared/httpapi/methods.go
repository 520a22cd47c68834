package httpapi

import (
	"net/http"
	"strings"
)

// candidateMethods are the methods a 405's Allow header may list.
var candidateMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// allowedMethods lists the methods that reach a route other than the
// catch-all "/" for r's path. Go's ServeMux answers 405 by itself only when
// no pattern matches, and every mux here has a "/" fallback (for the JSON
// 404), so the mux is asked once per method instead.
func allowedMethods(mux *http.ServeMux, r *http.Request) []string {
	var out []string
	for _, m := range candidateMethods {
		probe := *r
		probe.Method = m
		if _, pattern := mux.Handler(&probe); pattern != "" && pattern != "/" {
			out = append(out, m)
		}
	}
	return out
}

// methodNotAllowed writes the 405 with its Allow header and the JSON error
// envelope when r's path has routes but none for its method; it reports
// whether it answered.
func methodNotAllowed(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) bool {
	allowed := allowedMethods(mux, r)
	if len(allowed) == 0 {
		return false
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	WriteError(w, Errorf(http.StatusMethodNotAllowed, "method_not_allowed", "%s %s: allowed %s", r.Method, r.URL.Path, strings.Join(allowed, ", ")))
	return true
}
