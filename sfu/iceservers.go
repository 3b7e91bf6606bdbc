package sfu

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST API scheme is HMAC-SHA1, as TURN servers check it
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/token"
)

// ICEServer is one STUN or TURN server as a WebRTC client configures it
// (RTCIceServer).
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// turnCredentials are the TURN REST API's time-limited credentials for one
// join token: the username carries its expiry and the token's id, the
// password is the username's HMAC-SHA1 under the TURN server's secret, so
// the server checks them without any state. They expire with the token,
// and at the latest DefaultICECredentialTTL after they are given out: a
// join token may live for days (up to a week), and a TURN credential,
// which a revocation cannot reach, should not outlive the sessions it was
// given for by much. Clients get fresh ones with every answer.
func turnCredentials(secret string, c token.Claims, now time.Time) (username, password string) {
	exp := c.ExpiresAt
	if limit := now.Add(DefaultICECredentialTTL); exp.IsZero() || exp.After(limit) {
		exp = limit
	}
	who := c.ID
	if who == "" {
		who = c.Identity
	}
	username = strconv.FormatInt(exp.Unix(), 10) + ":" + who
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ICEServers lists the STUN and TURN servers a client holding c should
// use: the embedded TURN server's (when running), then the external ones,
// TURN ones with credentials derived from c.
func (s *SFU) ICEServers(c token.Claims) []ICEServer {
	s.mu.Lock()
	t := s.turn
	s.mu.Unlock()
	now := s.now()
	var out []ICEServer
	if t != nil {
		user, pass := turnCredentials(t.secret, c, now)
		out = append(out, ICEServer{URLs: t.urls, Username: user, Credential: pass})
	}
	var stun, turn []string
	for _, u := range s.cfg.ICEServers {
		if strings.HasPrefix(u, "stun:") {
			stun = append(stun, u)
		} else {
			turn = append(turn, u)
		}
	}
	if len(stun) > 0 {
		out = append(out, ICEServer{URLs: stun})
	}
	if len(turn) > 0 {
		srv := ICEServer{URLs: turn}
		if s.cfg.ICEServerSecret != "" {
			srv.Username, srv.Credential = turnCredentials(s.cfg.ICEServerSecret, c, now)
		}
		out = append(out, srv)
	}
	return out
}

// setICELinks adds one Link header per ICE server URL (RFC 9725 section
// 4.6), with its credentials.
func setICELinks(h http.Header, servers []ICEServer) {
	for _, srv := range servers {
		for _, u := range srv.URLs {
			v := "<" + u + `>; rel="ice-server"`
			if srv.Username != "" {
				v += `; username="` + srv.Username + `"; credential="` + srv.Credential + `"; credential-type="password"`
			}
			h.Add("Link", v)
		}
	}
}

// ICEServersHandler answers GET with the ICE servers for the join token in
// the Authorization header, as JSON ({"ice_servers": [RTCIceServer...]}),
// for pages that build their RTCPeerConnection before any WHIP or WHEP
// request. cmd mounts it at /v1/ice-servers.
func (s *SFU) ICEServersHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.setCORS(w, r)
		switch r.Method {
		case http.MethodOptions:
			s.serveOptions(w, r, "GET, OPTIONS", "")
			return
		case http.MethodGet:
		default:
			w.Header().Set("Allow", "GET, OPTIONS")
			writeError(w, http.StatusMethodNotAllowed, codeMethod, r.Method+" is not supported; GET the ICE servers")
			return
		}
		raw, ok := token.FromAuthorization(r.Header.Get("Authorization"))
		if !ok {
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "send the join token as Authorization: Bearer <token>")
			return
		}
		claims, err := s.verifier.Verify(raw)
		if err != nil {
			writeError(w, http.StatusUnauthorized, codeUnauthorized, "join token refused: "+err.Error())
			return
		}
		// The embedded TURN server relays only to its own node's media
		// port, and each node signs its own credentials: a page served by
		// one node for a meeting another holds must ask that one, as its
		// offers will be redirected there too.
		if aerr := s.place(r.Context(), claims); aerr != nil && aerr.code == codeMoved {
			target := aerr.message + r.URL.RequestURI()
			w.Header().Set("Location", target)
			writeError(w, http.StatusTemporaryRedirect, codeMoved,
				"this meeting's media is on another node: ask it for its ICE servers at "+target)
			return
		}
		servers := s.ICEServers(claims)
		if servers == nil {
			servers = []ICEServer{}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(map[string]any{"ice_servers": servers})
	})
}
