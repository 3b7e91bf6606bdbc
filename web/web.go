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
	"context"
	"embed"
	"fmt"
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
const csp = "default-src 'none'; script-src 'self'; connect-src 'self'%s; style-src 'self'; " +
	"img-src 'self' data:; media-src 'self' blob:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Config configures the pages' handler.
type Config struct {
	// ConnectOrigins, optional, lists the other origins the pages may
	// call besides their own: with several Greffier nodes, those of the
	// nodes' own URLs, where WHIP, WHEP and caption requests are
	// redirected. Called once per page served.
	ConnectOrigins func(ctx context.Context) []string
}

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
func Handler() http.Handler { return NewHandler(Config{}) }

// NewHandler serves the pages as Handler does, with cfg.
func NewHandler(cfg Config) http.Handler {
	policy := func(r *http.Request) string {
		var extra strings.Builder
		if cfg.ConnectOrigins != nil {
			for _, o := range cfg.ConnectOrigins(r.Context()) {
				extra.WriteString(" " + o)
			}
		}
		return fmt.Sprintf(csp, extra.String())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/app/", http.StatusFound)
	})
	mux.HandleFunc("GET /join/{$}", func(w http.ResponseWriter, r *http.Request) { serve(w, "join.html", policy(r)) })
	mux.HandleFunc("GET /app/{$}", func(w http.ResponseWriter, r *http.Request) { serve(w, "app.html", policy(r)) })
	mux.HandleFunc("GET /assets/{file}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("file")
		if strings.Contains(name, "/") || types[path.Ext(name)] == "" {
			httperr.Write(w, http.StatusNotFound, "not_found", "no such file")
			return
		}
		// A policy binds documents only: the pages' own is what counts.
		serve(w, "assets/"+name, fmt.Sprintf(csp, ""))
	})
	return httperr.Routes(mux)
}

func serve(w http.ResponseWriter, name, csp string) {
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
