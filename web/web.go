// Package web serves Greffier's pages, embedded in the binary (no build
// step, no build server): the meeting room at /join/ (a participant's join
// link) and the host's pages at /app/ (sign in, meetings, minutes, search),
// with their scripts and styles under /assets/.
//
// It only serves files: it must not import sfu, api or anything that knows
// meetings. The pages talk to /v1/... on their own origin, so no CORS is
// needed, and a strict Content-Security-Policy goes with every answer.
package web

import (
	"embed"
	"net/http"
	"path"
	"strings"

	"github.com/greffier/greffier/internal/httperr"
)

//go:embed join.html app.html assets
var files embed.FS

// csp lets the pages run only their own scripts and styles and talk only
// to their own origin; media flows outside the CSP's reach. The player
// reads the mix from the same origin (media-src).
const csp = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; media-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// Handler serves the pages. Mount it at "/". The join token goes in the
// fragment, which browsers never send to servers or in Referer:
//
//	/join/#token=<join token>   the meeting room
//	/app/                       sign in, meetings, minutes, search
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/app/", http.StatusFound)
	})
	mux.HandleFunc("GET /join/{$}", func(w http.ResponseWriter, r *http.Request) { serve(w, "join.html") })
	mux.HandleFunc("GET /app/{$}", func(w http.ResponseWriter, r *http.Request) { serve(w, "app.html") })
	mux.HandleFunc("GET /assets/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if strings.Contains(name, "/") || types[path.Ext(name)] == "" {
			httperr.Write(w, http.StatusNotFound, "not_found", "no such file")
			return
		}
		serve(w, "assets/"+name)
	})
	return httperr.Routes(mux)
}

func serve(w http.ResponseWriter, name string) {
	b, err := files.ReadFile(name)
	if err != nil {
		httperr.Write(w, http.StatusNotFound, "not_found", "no such file")
		return
	}
	h := w.Header()
	h.Set("Content-Type", types[path.Ext(name)])
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
