package sfu

import (
	"net/http"
	"slices"

	"github.com/greffier/greffier/internal/token"
)

// corsAllowHeaders are the request headers WHIP/WHEP clients send:
// If-Match for trickle and restarts (RFC 9725), and ETag, which
// @eyevinn/whip-web-client sends on PATCH in its place.
const corsAllowHeaders = "Authorization, Content-Type, If-Match, ETag"

// corsExposeHeaders are the response headers a client page must read:
// the session URL, its ICE generation, the ICE servers, what the endpoint
// accepts, and the methods (a client learns from them whether PATCH, and
// so trickle, is supported).
const corsExposeHeaders = "Location, ETag, Link, Accept-Post, Accept-Patch, Access-Control-Allow-Methods"

// setCORS allows the request's origin when it may call (any origin when
// AllowedOrigins is empty). Join tokens travel in the Authorization
// header, never in cookies, so credentials mode stays off.
func (s *SFU) setCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	if len(s.cfg.AllowedOrigins) == 0 {
		h.Set("Access-Control-Allow-Origin", "*")
	} else {
		h.Add("Vary", "Origin")
		if !slices.Contains(s.cfg.AllowedOrigins, origin) {
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
	}
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
}

// corsMethods is what CORS allows for a URL whose Allow is methods.
func corsMethods(methods string) string {
	if methods == "GET, OPTIONS" {
		return methods
	}
	return "POST, PATCH, DELETE, OPTIONS"
}

// serveOptions answers OPTIONS (RFC 9725 section 4.2): a CORS preflight
// before any token check, and for a request that carries a valid join
// token of kind (not a preflight), the ICE servers in Link headers, which
// some clients fetch this way before their offer. accepts is the
// Accept-Post value, empty on a session URL.
func (s *SFU) serveOptions(w http.ResponseWriter, r *http.Request, methods, accepts string) {
	h := w.Header()
	h.Set("Allow", methods)
	if accepts != "" {
		h.Set("Accept-Post", accepts)
	} else if methods != "GET, OPTIONS" {
		h.Set("Accept-Patch", sdpFragType)
	}
	if h.Get("Access-Control-Allow-Origin") != "" {
		// Every method of the protocol, on the endpoint too: some clients
		// (@eyevinn/whip-web-client) look for PATCH there to decide
		// whether to trickle.
		h.Set("Access-Control-Allow-Methods", corsMethods(methods))
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "86400")
	}
	if r.Header.Get("Access-Control-Request-Method") == "" {
		if raw, ok := token.FromAuthorization(r.Header.Get("Authorization")); ok {
			if claims, err := s.verifier.Verify(raw); err == nil {
				setICELinks(h, s.ICEServers(claims))
			}
		}
	}
	w.WriteHeader(http.StatusOK)
}
