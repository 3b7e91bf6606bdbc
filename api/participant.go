package api

import (
	"net/http"
	"strings"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/internal/usertext"
)

// joinClaims returns the claims of the request's bearer join token when it
// is one of meeting meetingID's, not revoked and grants right.
func (a *API) joinClaims(r *http.Request, meetingID string, right token.Right) (token.Claims, bool) {
	raw, ok := token.FromAuthorization(r.Header.Get("Authorization"))
	if !ok {
		return token.Claims{}, false
	}
	c, err := a.signer.Verify(raw)
	if err != nil || c.MeetingID != meetingID || !c.Can(right) {
		return token.Claims{}, false
	}
	revoked, err := a.store.JoinTokenRevoked(r.Context(), meetingID, c.Identity, c.ID)
	if err != nil {
		a.log.Error("checking a join token's revocation", "meeting", meetingID, "err", err)
		return token.Claims{}, false
	}
	return c, !revoked
}

type chooseNameRequest struct {
	DisplayName string `json:"display_name"`
}

type chooseNameJSON struct {
	DisplayName string `json:"display_name"`
	// Token is the same token (same id, identity, rights and expiry)
	// carrying the chosen name: the page joins with it, so the name
	// reaches the participant list, the recording and the minutes.
	Token string `json:"token"`
}

// chooseName lets a participant whose join token has the name right pick
// the name shown for them before joining. The token is signed again with
// that name; the identity, the speaker's key, stays the host's.
func (a *API) chooseName(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := a.joinClaims(r, id, token.RightName)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="greffier"`)
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"send Authorization: Bearer <join token of this meeting with the name right>")
		return
	}
	var req chooseNameRequest
	if !decodeBody(w, r, &req) {
		return
	}
	name := strings.TrimSpace(req.DisplayName)
	if name == "" {
		writeError(w, http.StatusBadRequest, "bad_name", "display_name needs 1 to 200 characters")
		return
	}
	if err := usertext.CheckLine(name, maxNameLen); err != nil {
		writeError(w, http.StatusBadRequest, "bad_name", "display_name "+err.Error())
		return
	}
	m, err := a.store.Meeting(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if m.State != store.MeetingCreated && m.State != store.MeetingLive {
		writeError(w, http.StatusConflict, "meeting_ended", "meeting "+m.ID+" is "+string(m.State)+": nobody can join it")
		return
	}
	c.DisplayName = name
	raw, err := a.signer.Sign(c)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, chooseNameJSON{DisplayName: name, Token: raw})
}

// minutesByJoinToken lets a join token with the minutes right read its own
// meeting's minutes: the participant's link leads to them once ready.
// It answers whether it served the request (or refused it for good).
func (a *API) minutesByJoinToken(w http.ResponseWriter, r *http.Request, h http.HandlerFunc) bool {
	id := r.PathValue("id")
	if r.Method != http.MethodGet || id == "" {
		return false
	}
	if _, ok := a.joinClaims(r, id, token.RightMinutes); !ok {
		return false
	}
	if !validInput(w, r) {
		return true
	}
	h(w, r)
	return true
}
