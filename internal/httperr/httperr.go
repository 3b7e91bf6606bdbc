// Package httperr writes the one error body every Greffier HTTP answer
// uses, {"error":{"code","message"}}, and makes a ServeMux answer its own
// 404 and 405 that way too instead of in plain text. It knows nothing of
// meetings: the API, the join page and the top-level mux share it.
package httperr

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Body is an error answer.
type Body struct {
	Error Error `json:"error"`
}

// Error is what went wrong: a stable code to branch on and a message that
// says what to do.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Write answers status with the JSON error body.
func Write(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Del("Content-Length")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(Body{Error{Code: code, Message: message}}) // the client went away; nothing to do
}

// Routes serves mux, but answers a request that matches none of its
// patterns with a JSON 404, or a JSON 405 with the Allow header when the
// path exists for other methods.
func Routes(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// The mux's own answer says which of the two it is, and which
		// methods the path has.
		probe := &statusProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			allow := probe.header.Get("Allow")
			w.Header().Set("Allow", allow)
			Write(w, http.StatusMethodNotAllowed, "method_not_allowed",
				r.Method+" is not allowed on "+r.URL.Path+"; use "+strings.ReplaceAll(allow, ",", " or"))
			return
		}
		Write(w, http.StatusNotFound, "not_found", "no such route: "+r.Method+" "+r.URL.Path)
	})
}

// statusProbe records the status and headers a handler answers with, and
// drops its body.
type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header { return p.header }

func (p *statusProbe) WriteHeader(status int) {
	if p.status == 0 {
		p.status = status
	}
}

func (p *statusProbe) Write(b []byte) (int, error) {
	p.WriteHeader(http.StatusOK)
	return len(b), nil
}
