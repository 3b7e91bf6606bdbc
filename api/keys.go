package api

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/usertext"
)

// keyJSON is an API key as the API shows it; Key, the secret itself, only
// in the answer that created it.
type keyJSON struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Role        Role       `json:"role"`
	AllMeetings bool       `json:"all_meetings"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	LastUsedAt  *time.Time `json:"last_used_at"`
	Key         string     `json:"key,omitempty"`
}

func keyToJSON(k store.APIKey) keyJSON {
	return keyJSON{ID: k.ID, Name: k.Name, Role: Role(k.Role), AllMeetings: k.AllMeetings, CreatedAt: k.CreatedAt,
		ExpiresAt: timePtr(k.ExpiresAt), LastUsedAt: timePtr(k.LastUsedAt)}
}

// keyPrefix starts every key, so that a leaked one is recognisable (secret
// scanners, logs).
const keyPrefix = "grf_"

// newKey returns a fresh key: 256 random bits, base64url.
func newKey() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return keyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

func (a *API) createKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name        string     `json:"name"`
		Role        Role       `json:"role"`
		AllMeetings bool       `json:"all_meetings"`
		ExpiresAt   *time.Time `json:"expires_at"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	req.Name = strings.TrimSpace(req.Name)
	if req.Name == "" {
		writeError(w, http.StatusBadRequest, "bad_name", "name the key (1 to 200 characters): who or what uses it")
		return
	}
	if err := usertext.CheckLine(req.Name, maxNameLen); err != nil {
		writeError(w, http.StatusBadRequest, "bad_name", "name "+err.Error())
		return
	}
	if req.Role.Permissions() == nil {
		writeError(w, http.StatusBadRequest, "bad_role", "role "+strconv.Quote(string(req.Role))+
			" is unknown: use admin, host, archivist or agent")
		return
	}
	if req.AllMeetings && req.Role != RoleHost {
		writeError(w, http.StatusBadRequest, "bad_all_meetings", "all_meetings is for host keys: the other roles see every meeting")
		return
	}
	k := store.APIKey{ID: store.NewID("key"), Name: req.Name, Role: string(req.Role), AllMeetings: req.AllMeetings}
	if req.ExpiresAt != nil {
		if !req.ExpiresAt.After(a.now()) {
			writeError(w, http.StatusBadRequest, "bad_expires_at", "expires_at must be in the future (RFC 3339, e.g. 2027-01-31T00:00:00Z)")
			return
		}
		k.ExpiresAt = req.ExpiresAt.UTC().Truncate(time.Millisecond)
	}
	raw := newKey()
	k.Hash = hashKey(raw)
	k, err := a.store.CreateAPIKey(r.Context(), k)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := keyToJSON(k)
	out.Key = raw
	w.Header().Set("Location", "/v1/keys/"+k.ID)
	writeJSON(w, http.StatusCreated, out)
}

// listKeys lists the keys not revoked, oldest first. The bootstrap key is
// not among them: it lives in the configuration.
func (a *API) listKeys(w http.ResponseWriter, r *http.Request) {
	p, ok := pageOf(w, r, defaultPage, maxPage)
	if !ok {
		return
	}
	ks, err := a.store.APIKeys(r.Context(), p.after.position(), p.limit+1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ks, next := trimPage(ks, p.limit, func(x store.APIKey) (time.Time, string) { return x.CreatedAt, x.ID })
	out := make([]keyJSON, len(ks))
	for i, k := range ks {
		out[i] = keyToJSON(k)
	}
	writeJSON(w, http.StatusOK, listJSON("keys", out, next))
}

// revokeKey revokes a key: refused from its next request on.
func (a *API) revokeKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if id == BootstrapKeyID {
		writeError(w, http.StatusConflict, "bootstrap_key", "the bootstrap admin key comes from the configuration: "+
			"change GREFFIER_API_TOKEN (or <data>/api-token) and restart to replace it")
		return
	}
	if err := a.store.RevokeAPIKey(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type auditJSON struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	KeyID     string    `json:"key_id"`
	KeyName   string    `json:"key_name"`
	Method    string    `json:"method"`
	Route     string    `json:"route"`
	MeetingID string    `json:"meeting_id,omitempty"`
	Status    int       `json:"status"`
}

// listAudit lists the audit log, newest first; ?meeting= narrows it to one
// meeting.
func (a *API) listAudit(w http.ResponseWriter, r *http.Request) {
	p, ok := pageOf(w, r, defaultPage, maxPage)
	if !ok {
		return
	}
	es, err := a.store.Audit(r.Context(), r.URL.Query().Get("meeting"), p.after.position(), p.limit+1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	es, next := trimPage(es, p.limit, func(x store.AuditEntry) (time.Time, string) { return x.At, x.ID })
	out := make([]auditJSON, len(es))
	for i, e := range es {
		out[i] = auditJSON{ID: e.ID, At: e.At, KeyID: e.KeyID, KeyName: e.KeyName, Method: e.Method, Route: e.Route,
			MeetingID: e.MeetingID, Status: e.Status}
	}
	writeJSON(w, http.StatusOK, listJSON("entries", out, next))
}
