package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
)

// Browser sign-in: a person pastes their key once, and the browser then
// holds a session cookie instead. The cookie is a signed value (which key,
// until when), never the key: any node that knows the signing secret
// accepts it, so a cluster needs no shared session table. Every request
// looks the key up again by its id (one indexed read, as a bearer key
// costs), so revoking a key or its expiry ends its browser sessions at
// once. Signing out clears the cookie; a copied cookie stays valid until
// it expires or its key is revoked, which is why sessions are short
// (DefaultSessionTTL) and HttpOnly.

const (
	sessionCookie = "greffier_session"
	// DefaultSessionTTL is how long a browser stays signed in.
	DefaultSessionTTL = 12 * time.Hour
	// csrfHeader must accompany every cookie-authenticated request that
	// changes something: a page on another origin cannot set a custom
	// header without a CORS preflight, which this server never grants.
	csrfHeader = "X-Greffier"
)

// Why a browser session is refused.
var (
	ErrSessionEnded = errors.New("your session has ended: sign in again with your key")
	errCSRF         = errors.New("a signed-in browser must send the " + csrfHeader + ": 1 header from this site's own pages")
)

// principal says who sent r: its bearer key, else the key its session
// cookie names. It is the one place credentials are read. A change sent
// with the cookie, which the browser attaches on its own, must also prove
// it came from our pages (sameOriginWrite).
func (a *API) principal(r *http.Request) (Principal, error) {
	if raw, ok := token.FromAuthorization(r.Header.Get("Authorization")); ok {
		return a.Authenticate(r.Context(), raw)
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return Principal{}, ErrNoKey
	}
	p, err := a.sessionPrincipal(r.Context(), c.Value)
	if err != nil {
		return Principal{}, err
	}
	if !sameOriginWrite(r) {
		return Principal{}, errCSRF
	}
	return p, nil
}

// sessionValue is what the cookie carries: the key's id, not the key.
type sessionValue struct {
	KeyID   string `json:"k"`
	Expires int64  `json:"e"`
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

// sessionPrincipal checks a session cookie's signature and expiry, then
// its key as it stands now: revoked or expired keys end their sessions.
func (a *API) sessionPrincipal(ctx context.Context, cookie string) (Principal, error) {
	payload, sig, ok := strings.Cut(cookie, ".")
	if !ok {
		return Principal{}, ErrSessionEnded
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return Principal{}, ErrSessionEnded
	}
	mac := hmac.New(sha256.New, a.sessionSecret())
	mac.Write([]byte(payload))
	if !hmac.Equal(got, mac.Sum(nil)) {
		return Principal{}, ErrSessionEnded
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Principal{}, ErrSessionEnded
	}
	var v sessionValue
	if json.Unmarshal(b, &v) != nil || a.now().Unix() >= v.Expires || v.KeyID == "" {
		return Principal{}, ErrSessionEnded
	}
	if v.KeyID == BootstrapKeyID {
		// The secret derives from the bootstrap key: a valid signature
		// means it has not changed since sign-in.
		return bootstrapPrincipal, nil
	}
	k, err := a.store.APIKeyByID(ctx, v.KeyID)
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrSessionEnded
	}
	if err != nil {
		return Principal{}, err
	}
	return a.keyPrincipal(ctx, k)
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
	Role        Role      `json:"role"`
	AllMeetings bool      `json:"all_meetings"`
	Permissions []string  `json:"permissions"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

func sessionFor(p Principal) sessionJSON {
	return sessionJSON{Name: p.Name, Role: p.Role, AllMeetings: p.AllMeetings, Permissions: p.Permissions()}
}

// signIn (POST /v1/session, {"key"}) sets the session cookie.
func (a *API) signIn(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key string `json:"key"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	p, err := a.Authenticate(r.Context(), strings.TrimSpace(req.Key))
	switch {
	case errors.Is(err, ErrKeyRevoked), errors.Is(err, ErrKeyExpired):
		writeError(w, http.StatusUnauthorized, "bad_key", err.Error())
		return
	case errors.Is(err, ErrNoKey), errors.Is(err, ErrUnknownKey):
		writeError(w, http.StatusUnauthorized, "bad_key", "this key is not valid: check that you pasted the whole key")
		return
	case err != nil:
		a.fail(w, r, err)
		return
	}
	exp := a.now().Add(a.sessionTTL()).Truncate(time.Second)
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: a.signSession(sessionValue{KeyID: p.KeyID, Expires: exp.Unix()}),
		Path: "/", Expires: exp, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
	})
	w.Header().Set("Cache-Control", "no-store")
	out := sessionFor(p)
	out.ExpiresAt = exp.UTC()
	writeJSON(w, http.StatusOK, out)
}

// whoAmI (GET /v1/session) says who the caller is, cookie or bearer.
func (a *API) whoAmI(w http.ResponseWriter, r *http.Request) {
	p, err := a.principal(r)
	if err != nil {
		a.refuseUnauthenticated(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, sessionFor(p))
}

// signOut (DELETE /v1/session) clears the cookie.
func (a *API) signOut(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(sessionCookie); err == nil && !sameOriginWrite(r) {
		writeError(w, http.StatusForbidden, "csrf", errCSRF.Error())
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
