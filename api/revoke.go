package api

import (
	"net/http"
)

// revokeToken revokes one join token by its id (token_id where it was
// issued) and closes the sessions it opened (once their recordings are
// stored) and the caption streams it follows.
func (a *API) revokeToken(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	t, err := a.store.RevokeJoinToken(r.Context(), m.ID, r.PathValue("token"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.captions != nil {
		a.captions.EndFollower(m.ID, t.Identity, t.ID)
	}
	if _, err := a.sessions.Disconnect(r.Context(), m.ID, t.Identity, t.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// revokeParticipant revokes every join token issued so far to an identity
// (a leaked link, a participant to remove) and closes its sessions and
// caption streams. Tokens
// issued afterwards work: the identity is not banned.
func (a *API) revokeParticipant(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	identity := r.PathValue("identity")
	n, err := a.store.RevokeIdentity(r.Context(), m.ID, identity)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.captions != nil {
		a.captions.EndFollower(m.ID, identity, "")
	}
	closed, err := a.sessions.Disconnect(r.Context(), m.ID, identity, "")
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"identity": identity, "tokens_revoked": n, "sessions_closed": closed})
}
