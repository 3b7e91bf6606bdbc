package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/store"
)

// Permissions a route asks for. A role is a fixed set of them.
const (
	PermMeetingsCreate   = "meetings:create"
	PermMeetingsList     = "meetings:list"     // list meetings, read one: enough to find minutes
	PermMeetingsRead     = "meetings:read"     // participants, events, track list
	PermMeetingsControl  = "meetings:control"  // end, patch, join tokens, revoke, rename speakers, rerun
	PermMinutesRead      = "minutes:read"      // minutes, renderings, search, captions
	PermRecordingsRead   = "recordings:read"   // track, archive, mix and speaker downloads
	PermRecordingsManage = "recordings:manage" // retention, legal hold, delete
	PermRecordingsImport = "recordings:import" // upload recordings and import them as a meeting
	PermKeysManage       = "keys:manage"
	PermAuditRead        = "audit:read"
	// PermPublic marks a route that asks for no key (the OpenAPI
	// document) or checks its callers itself (captions: a key or a join
	// token).
	PermPublic = ""
)

// Role is what an API key may do.
type Role string

// The roles. A host sees the meetings its key created, unless the key is
// made with all_meetings; the other roles see every meeting.
const (
	RoleAdmin     Role = "admin"
	RoleHost      Role = "host"
	RoleArchivist Role = "archivist"
	RoleAgent     Role = "agent"
)

// Roles lists every role, most powerful first.
func Roles() []Role { return []Role{RoleAdmin, RoleHost, RoleArchivist, RoleAgent} }

// Permissions lists what a role may do. Hosts run meetings and read their
// minutes but do not download recordings: raw voices are the most
// sensitive thing Greffier keeps, and keeping them is the archivists' job.
// Archivists read the minutes too, because an archive keeps a meeting's
// minutes beside its recordings.
func (r Role) Permissions() []string {
	switch r {
	case RoleAdmin:
		return []string{PermMeetingsCreate, PermMeetingsList, PermMeetingsRead, PermMeetingsControl, PermMinutesRead,
			PermRecordingsRead, PermRecordingsManage, PermRecordingsImport, PermKeysManage, PermAuditRead}
	case RoleHost:
		return []string{PermMeetingsCreate, PermMeetingsList, PermMeetingsRead, PermMeetingsControl, PermMinutesRead,
			PermRecordingsImport}
	case RoleArchivist:
		return []string{PermMeetingsList, PermMeetingsRead, PermMinutesRead, PermRecordingsRead, PermRecordingsManage,
			PermRecordingsImport}
	case RoleAgent:
		return []string{PermMeetingsList, PermMinutesRead}
	}
	return nil
}

// Principal is who calls: the API key the request carried.
type Principal struct {
	KeyID string
	Name  string
	Role  Role
	// AllMeetings lets a host key see every meeting, not only its own.
	AllMeetings bool
}

// Permissions lists what the principal may do.
func (p Principal) Permissions() []string { return p.Role.Permissions() }

// Can says whether the principal holds permission perm.
func (p Principal) Can(perm string) bool {
	return perm == PermPublic || slices.Contains(p.Role.Permissions(), perm)
}

// SeesAll says whether the principal sees every meeting; a host without
// all_meetings sees only the meetings its key created.
func (p Principal) SeesAll() bool { return p.Role != RoleHost || p.AllMeetings }

// sees says whether the principal may see meeting m at all.
func (p Principal) sees(m store.Meeting) bool { return p.SeesAll() || m.CreatedBy == p.KeyID }

// BootstrapKeyID names the admin key set by configuration (GREFFIER_API_TOKEN
// or <data>/api-token): it is not stored, so it cannot be revoked through
// the API; change the setting instead.
const BootstrapKeyID = "key_bootstrap"

// Why Authenticate refuses a key.
var (
	ErrNoKey      = errors.New("no API key: send Authorization: Bearer <API key>")
	ErrUnknownKey = errors.New("unknown API key")
	ErrKeyRevoked = errors.New("this API key was revoked: ask an admin for a new one")
	ErrKeyExpired = errors.New("this API key has expired: ask an admin for a new one")
)

// lastUsedEvery bounds how often a key's last use is written: at most once
// per key and interval, so that a busy key costs no write per request.
const lastUsedEvery = time.Minute

// Authenticate turns a raw API key into the principal it stands for. A
// session handler that keeps a key in a cookie calls it too.
func (a *API) Authenticate(ctx context.Context, raw string) (Principal, error) {
	if raw == "" {
		return Principal{}, ErrNoKey
	}
	if subtle.ConstantTimeCompare([]byte(raw), []byte(a.cfg.Token)) == 1 {
		return bootstrapPrincipal, nil
	}
	k, err := a.store.APIKeyByHash(ctx, hashKey(raw))
	if errors.Is(err, store.ErrNotFound) {
		return Principal{}, ErrUnknownKey
	}
	if err != nil {
		return Principal{}, err
	}
	return a.keyPrincipal(ctx, k)
}

var bootstrapPrincipal = Principal{KeyID: BootstrapKeyID, Name: "bootstrap admin (GREFFIER_API_TOKEN)", Role: RoleAdmin}

// keyPrincipal refuses a stored key that was revoked or has expired, and
// otherwise stamps its last use: the one test of a key, whether it came
// in a header or a browser session names it.
func (a *API) keyPrincipal(ctx context.Context, k store.APIKey) (Principal, error) {
	now := a.now()
	switch {
	case !k.RevokedAt.IsZero():
		return Principal{}, ErrKeyRevoked
	case !k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt):
		return Principal{}, ErrKeyExpired
	}
	if now.Sub(k.LastUsedAt) >= lastUsedEvery {
		if err := a.store.TouchAPIKey(ctx, k.ID, now, now.Add(-lastUsedEvery)); err != nil {
			// The key is good; a missed last-use stamp is not worth
			// refusing the call for.
			a.log.Warn("recording an API key's last use", "key", k.ID, "err", err)
		}
	}
	return Principal{KeyID: k.ID, Name: k.Name, Role: Role(k.Role), AllMeetings: k.AllMeetings}, nil
}

func hashKey(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

type principalKey struct{}

// PrincipalFrom returns the principal the API put in a request's context.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

func (a *API) refuseUnauthenticated(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errCSRF):
		writeError(w, http.StatusForbidden, "csrf", err.Error())
	case errors.Is(err, ErrNoKey), errors.Is(err, ErrUnknownKey), errors.Is(err, ErrKeyRevoked), errors.Is(err, ErrKeyExpired),
		errors.Is(err, ErrSessionEnded):
		w.Header().Set("WWW-Authenticate", `Bearer realm="greffier"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
	default:
		a.fail(w, r, err)
	}
}

// guard wraps a route's handler: it authenticates the caller, checks the
// route's permission and the request's input, hides from a host the
// meetings it may not see, and records mutating calls and downloads in the
// audit log.
func (a *API) guard(pattern, perm string, h http.HandlerFunc) http.Handler {
	method, path, _ := strings.Cut(pattern, " ")
	meetingScoped := strings.HasPrefix(path, "/v1/meetings/{id}")
	// Reading minutes changes nothing, whatever the method: MCP's
	// JSON-RPC reads come as POSTs and are no more audited than a search.
	audited := (method != http.MethodGet && perm != PermMinutesRead) || perm == PermRecordingsRead ||
		perm == PermRecordingsManage
	// A participant's join token with the minutes right reads its own
	// meeting's minutes, in every rendering, and nothing else.
	minutesRoute := method == http.MethodGet && strings.HasPrefix(path, "/v1/meetings/{id}/minutes")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := a.principal(r)
		if err != nil {
			if minutesRoute && (errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrNoKey)) && a.minutesByJoinToken(w, r, h) {
				return
			}
			a.refuseUnauthenticated(w, r, err)
			return
		}
		if audited {
			sw := &statusWriter{ResponseWriter: w}
			defer a.audit(r, p, method, path, meetingScoped, sw)
			w = sw
		}
		if !p.Can(perm) {
			writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf(
				"this %s key may not do this (it needs the %s permission; a %s key has %s)",
				p.Role, perm, p.Role, strings.Join(p.Permissions(), ", ")))
			return
		}
		if !validInput(w, r) {
			return
		}
		if meetingScoped && !p.SeesAll() {
			m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
			if err != nil {
				a.fail(w, r, err)
				return
			}
			if !p.sees(m) {
				// Not 403: a host does not learn that other meetings exist.
				writeError(w, http.StatusNotFound, "not_found", "meeting "+m.ID+": not found")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// statusWriter remembers the status a handler answered, for the audit log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// audit records a call once answered. The meeting is the path's, or the
// one a creation answered with (its Location).
func (a *API) audit(r *http.Request, p Principal, method, route string, meetingScoped bool, sw *statusWriter) {
	e := store.AuditEntry{KeyID: p.KeyID, KeyName: p.Name, Method: method, Route: route, Status: sw.status}
	if meetingScoped {
		e.MeetingID = r.PathValue("id")
	} else if id, ok := strings.CutPrefix(sw.Header().Get("Location"), "/v1/meetings/"); ok {
		e.MeetingID = id
	}
	// Recorded even when the client has gone: the call happened.
	if _, err := a.store.AddAudit(context.WithoutCancel(r.Context()), e); err != nil {
		a.log.Error("recording a call in the audit log", "method", method, "route", route, "key", p.KeyID, "err", err)
	}
}
