// Package web serves Greffier's join page: a small static page (embedded
// HTML and JavaScript, no build step) with which a browser publishes its
// microphone over WHIP and, optionally, listens over WHEP, using the join
// token it is given in the URL fragment.
//
// It only serves files: it must not import sfu, api or anything that knows
// meetings. The page talks to /v1/whip and /v1/whep on its own origin, so
// no CORS is needed.
package web

import (
	"embed"
	"net/http"

	"github.com/greffier/greffier/internal/httperr"
)

//go:embed join.html join.js
var files embed.FS

// csp lets the page run only its own script and talk only to its own
// origin (WHIP, WHEP); media flows outside the CSP's reach.
const csp = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; " +
	"img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the join page at /join/ and its script at /join/join.js.
// Mount it with mux.Handle("/join/", web.Handler()). The join token goes
// in the fragment, which browsers never send to servers or in Referer:
//
//	/join/#token=<join token>             publish the microphone
//	/join/#token=<join token>&listen=3    also listen on 3 slots
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /join/{$}", func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, "join.html", "text/html; charset=utf-8")
	})
	mux.HandleFunc("GET /join/join.js", func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, "join.js", "text/javascript; charset=utf-8")
	})
	return httperr.Routes(mux)
}

func serve(w http.ResponseWriter, _ *http.Request, name, contentType string) {
	b, err := files.ReadFile(name)
	if err != nil {
		// Embedded at build time: missing means a broken build.
		http.Error(w, "page missing from this build", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
