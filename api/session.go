package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/token"
)

// Browser sign-in: a person pastes their key once, and the browser then
// holds a session cookie instead. The cookie is a signed value (who, until
// when), never the key: any node that knows the signing secret accepts it,
// so a cluster needs no shared session table. Signing out clears the
// cookie; a copied cookie stays valid until it expires, which is why
// sessions are short (DefaultSessionTTL) and HttpOnly.

const (
	sessionCookie = "greffier_session"
	// DefaultSessionTTL is how long a browser stays signed in.
	DefaultSessionTTL = 12 * time.Hour
	// csrfHeader must accompany every cookie-authenticated request that
	// changes something: a page on another origin cannot set a custom
	// header without a CORS preflight, which this server never grants.
	csrfHeader = "X-Greffier"
)

// allPermissions are what the single API token may do: everything.
var allPermissions = []string{
	"meetings:create", "meetings:read", "meetings:control", "minutes:read",
	"recordings:read", "recordings:manage", "keys:manage", "audit:read",
}

// principal is who a request acts as.
type principal struct {
	// Key names the key that signed in (not the key itself), so that a
	// session can be checked again against it.
	Key         string   `json:"k"`
	Name        string   `json:"n"`
	Role        string   `json:"r"`
	Permissions []string `json:"p"`
}

// principalForKey turns a raw key into who it signs in as. Today there is
// one key, the API token: an admin with every permission. This is the one
// place that learns about keys; roles and per-key permissions plug in here.
func (a *API) principalForKey(raw string) (principal, bool) {
	if raw == "" || !a.checkAPIToken(raw) {
		return principal{}, false
	}
	return principal{Key: "api-token", Name: "admin", Role: "admin", Permissions: allPermissions}, true
}

// caller says who sent r: its bearer key, else its session cookie. viaCookie
// tells the caller that the browser sent the credential on its own, so a
// change must also prove it came from our pages (sameOriginWrite).
func (a *API) caller(r *http.Request) (p principal, viaCookie, ok bool) {
	if raw, has := token.FromAuthorization(r.Header.Get("Authorization")); has {
		p, ok = a.principalForKey(raw)
		return p, false, ok
	}
	p, ok = a.sessionFromCookie(r)
	return p, true, ok
}

type sessionValue struct {
	principal
	Expires int64 `json:"e"`
}

// sessionSecret derives the cookie's signing key from the API token:
// changing the token signs every browser out.
func (a *API) sessionSecret() []byte {
	h := sha256.Sum256([]byte("greffier session v1\x00" + a.cfg.Token))
	return h[:]
}

func (a *API) signSession(v sessionValue) string {
	b, _ := json.Marshal(v) // plain strings and ints always marshal
	payload := base64.RawURLEncoding.EncodeToString(b)
	mac := hmac.New(sha256.New, a.sessionSecret())
	mac.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// sessionFromCookie checks the session cookie's signature and expiry.
func (a *API) sessionFromCookie(r *http.Request) (principal, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return principal{}, false
	}
	payload, sig, ok := strings.Cut(c.Value, ".")
	if !ok {
		return principal{}, false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return principal{}, false
	}
	mac := hmac.New(sha256.New, a.sessionSecret())
	mac.Write([]byte(payload))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return principal{}, false
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return principal{}, false
	}
	var v sessionValue
	if json.Unmarshal(b, &v) != nil || a.now().Unix() >= v.Expires {
		return principal{}, false
	}
	return v.principal, true
}

// sameOriginWrite says whether a cookie-authenticated request that
// changes something came from one of our own pages: it carries the custom
// header (which other origins cannot send without a preflight) and, when
// the browser names its origin, that origin is this host.
func sameOriginWrite(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	if r.Header.Get(csrfHeader) != "1" {
		return false
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return false
		}
	}
	return true
}

type sessionJSON struct {
	Name        string    `json:"name"`
	Role        string    `json:"role"`
	Permissions []string  `json:"permissions"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

// SessionHandler serves /v1/session: POST {"key"} signs in (sets the
// cookie), GET says who the caller is (cookie or bearer), DELETE signs out.
func (a *API) SessionHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/session", a.signIn)
	mux.HandleFunc("GET /v1/session", a.whoAmI)
	mux.HandleFunc("DELETE /v1/session", a.signOut)
	return mux
}

func (a *API) signIn(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	p, ok := a.principalForKey(strings.TrimSpace(req.Key))
	if !ok {
		writeError(w, http.StatusUnauthorized, "bad_key", "this key is not valid: check that you pasted the whole key")
		return
	}
	exp := a.now().Add(a.sessionTTL()).Truncate(time.Second)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: a.signSession(sessionValue{principal: p, Expires: exp.Unix()}),
		Path: "/", Expires: exp, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, sessionJSON{Name: p.Name, Role: p.Role, Permissions: p.Permissions, ExpiresAt: exp.UTC()})
}

func (a *API) whoAmI(w http.ResponseWriter, r *http.Request) {
	p, _, ok := a.caller(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "unauthorized", "not signed in: sign in with your key")
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, sessionJSON{Name: p.Name, Role: p.Role, Permissions: p.Permissions})
}

func (a *API) signOut(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(sessionCookie); err == nil && !sameOriginWrite(r) {
		writeError(w, http.StatusForbidden, "csrf", "send the "+csrfHeader+": 1 header from this site's own pages")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) sessionTTL() time.Duration {
	if a.cfg.SessionTTL > 0 {
		return a.cfg.SessionTTL
	}
	return DefaultSessionTTL
}
