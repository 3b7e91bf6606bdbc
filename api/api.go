// Package api is Greffier's REST interface: meetings, join tokens, pipeline
// progress and minutes in JSON, WebVTT, SRT, Markdown and plain text. It
// holds no business logic of its own: it checks callers, parses requests,
// calls the store and the pipeline, and renders. Nothing imports it but
// cmd/greffier.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/egress"
	"github.com/greffier/greffier/internal/httperr"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/internal/upload"
	"github.com/greffier/greffier/internal/usertext"
)

// Defaults for Config.
const (
	DefaultTokenTTL  = 24 * time.Hour
	DefaultPublicURL = "http://127.0.0.1:8080"
	maxBody          = 1 << 20
)

// Config configures the API.
type Config struct {
	// Token is the bootstrap admin key (GREFFIER_API_TOKEN): it works
	// beside the keys created through /v1/keys. Required.
	Token string
	// PublicURL is the server's address as participants reach it
	// (scheme, host, optional path prefix), for the join links. Default
	// http://127.0.0.1:8080.
	PublicURL string
	// NodeURL, when set (several nodes), is this node's own base URL:
	// upload session URLs name it, since an upload's bytes are kept on
	// the disk of the node that created it.
	NodeURL string
	// NodeID names this node (several nodes): a live caption stream of a
	// meeting whose media another node holds is redirected there.
	NodeID string
	// TokenTTL is how long join tokens last unless a request says
	// otherwise (default 24 h).
	TokenTTL time.Duration
	// WebhookAllowPrivate accepts webhook URLs whose host is a private,
	// loopback or link-local address (default false: refused).
	WebhookAllowPrivate bool
	// RetainRecordings and RetainTranscripts are the retention periods of
	// meetings that set none (0: forever), shown with each meeting.
	RetainRecordings, RetainTranscripts time.Duration
	// SessionTTL is how long a browser sign-in lasts (default
	// DefaultSessionTTL).
	SessionTTL time.Duration
}

// Ender ends a meeting (meeting.Lifecycle): the pipeline's transaction,
// then its media, then its captions.
type Ender interface {
	EndMeeting(ctx context.Context, meetingID string) (store.Meeting, error)
}

// Rerunner runs the pipeline again over an ended meeting.
type Rerunner interface {
	Rerun(ctx context.Context, meetingID string) (store.Meeting, error)
}

// Sessions closes participants' live media sessions.
type Sessions interface {
	// Disconnect closes identity's sessions in a meeting (only those
	// opened with token tokenID, unless it is "") once their recordings
	// are stored, and says how many it closed.
	Disconnect(ctx context.Context, meetingID, identity, tokenID string) (int, error)
}

// Signer signs and verifies join tokens.
type Signer interface {
	Sign(c token.Claims) (string, error)
	Verify(raw string) (token.Claims, error)
}

// Deps are the parts the API calls. All are required.
type Deps struct {
	Store    *store.Store
	Blobs    blob.Store
	Ender    Ender
	Rerunner Rerunner
	Signer   Signer
	Sessions Sessions
	Logger   *slog.Logger
	// Captions is optional: without it there are no live captions.
	Captions CaptionHub
	// Deleter is optional: without it meetings cannot be deleted (the
	// route is not served).
	Deleter Deleter
	// Uploads and Importer are optional, together: without them there is
	// no import (the routes are not served).
	Uploads  *upload.Store
	Importer Importer
	// LiveKit is optional: without it no LiveKit room is recorded (the
	// routes are not served).
	LiveKit LiveKit
	// NodeTimeout is how long a node may be silent and still count as
	// alive in GET /v1/nodes (default 10 s).
	NodeTimeout time.Duration
	// Switches is optional: without it recording cannot be started or
	// stopped during a meeting (the routes answer 503).
	Switches Switches
}

// API serves the REST interface.
type API struct {
	cfg      Config
	store    *store.Store
	blobs    blob.Store
	ender    Ender
	rerun    Rerunner
	signer   Signer
	sessions Sessions
	webhooks egress.Guard
	captions CaptionHub
	deleter  Deleter
	uploads  *upload.Store
	importer Importer
	livekit  LiveKit
	// nodeTimeout: see Deps.NodeTimeout.
	nodeTimeout time.Duration
	log         *slog.Logger
	now         func() time.Time
	switches    Switches
}

// New builds the API.
func New(cfg Config, d Deps) (*API, error) {
	if cfg.Token == "" {
		return nil, errors.New("api: Token is required: set an API token (GREFFIER_API_TOKEN)")
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = DefaultPublicURL
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if d.Store == nil || d.Blobs == nil || d.Ender == nil || d.Rerunner == nil || d.Signer == nil || d.Sessions == nil || d.Logger == nil {
		return nil, errors.New("api: every field of Deps is required")
	}
	if d.NodeTimeout <= 0 {
		d.NodeTimeout = 10 * time.Second
	}
	return &API{nodeTimeout: d.NodeTimeout, cfg: cfg, store: d.Store, blobs: d.Blobs, ender: d.Ender, rerun: d.Rerunner, signer: d.Signer,
		sessions: d.Sessions, webhooks: egress.Guard{AllowPrivate: cfg.WebhookAllowPrivate},
		captions: d.Captions, deleter: d.Deleter, uploads: d.Uploads, importer: d.Importer, livekit: d.LiveKit, switches: d.Switches, log: d.Logger, now: time.Now}, nil
}

// Route is one registered route: its pattern ("METHOD /path") and the
// permission it asks for (PermPublic: none, or checked by the handler).
type Route struct {
	Pattern    string
	Permission string
}

// routes registers every route, one line each, with the permission it
// asks for (api/auth.go): Handler serves them, Routes
// lists them, so the role matrix and the OpenAPI document are checked
// against exactly what is served.
func (a *API) routes(route func(pattern, permission string, h http.HandlerFunc)) {
	route("GET /v1/openapi.json", PermPublic, serveOpenAPI)
	route("GET /v1/search", PermMinutesRead, a.search)
	route("POST /v1/mcp", PermMinutesRead, a.mcpHandler().ServeHTTP)
	route("POST /v1/meetings", PermMeetingsCreate, a.createMeeting)
	route("GET /v1/meetings", PermMeetingsList, a.listMeetings)
	route("GET /v1/meetings/{id}", PermMeetingsList, a.getMeeting)
	route("PATCH /v1/meetings/{id}", PermMeetingsControl, a.patchMeeting)
	route("POST /v1/meetings/{id}/end", PermMeetingsControl, a.endMeeting)
	route("POST /v1/meetings/{id}/tokens", PermMeetingsControl, a.createToken)
	route("DELETE /v1/meetings/{id}/tokens/{token}", PermMeetingsControl, a.revokeToken)
	route("POST /v1/meetings/{id}/participants/{identity}/revoke", PermMeetingsControl, a.revokeParticipant)
	route("GET /v1/meetings/{id}/participants", PermMeetingsRead, a.listParticipants)
	route("GET /v1/meetings/{id}/events", PermMeetingsRead, a.listEvents)
	route("PATCH /v1/meetings/{id}/participants/{identity}", PermMeetingsControl, a.renameParticipant)
	route("POST /v1/meetings/{id}/rerun", PermMeetingsControl, a.rerunMeeting)
	route("GET /v1/meetings/{id}/recording", PermMeetingsRead, a.getSwitches)
	route("POST /v1/meetings/{id}/recording/start", PermMeetingsControl, a.switchMeeting(store.ControlRecording, true))
	route("POST /v1/meetings/{id}/recording/stop", PermMeetingsControl, a.switchMeeting(store.ControlRecording, false))
	route("POST /v1/meetings/{id}/transcription/start", PermMeetingsControl, a.switchMeeting(store.ControlTranscription, true))
	route("POST /v1/meetings/{id}/transcription/stop", PermMeetingsControl, a.switchMeeting(store.ControlTranscription, false))
	route("GET /v1/meetings/{id}/tracks", PermMeetingsRead, a.listTracks)
	route("GET /v1/meetings/{id}/tracks/{file}", PermRecordingsRead, a.getTrack)
	route("GET /v1/meetings/{id}/archive.webm", PermRecordingsRead, a.getArchive(layout.ArchiveWebM, "audio/webm", "meeting.webm"))
	route("GET /v1/meetings/{id}/mix.flac", PermRecordingsRead, a.getArchive(layout.ArchiveMix, "audio/flac", "mix.flac"))
	route("GET /v1/meetings/{id}/speakers/{file}", PermRecordingsRead, a.getSpeaker)
	route("PATCH /v1/meetings/{id}/retention", PermRecordingsManage, a.patchRetention)
	if a.deleter != nil {
		route("DELETE /v1/meetings/{id}", PermRecordingsManage, a.deleteMeeting)
	}
	if a.uploads != nil && a.importer != nil {
		route("POST /v1/imports", PermRecordingsImport, a.createUpload)
		route("HEAD /v1/imports/{upload}", PermRecordingsImport, a.headUpload)
		route("PATCH /v1/imports/{upload}", PermRecordingsImport, a.patchUpload)
		route("DELETE /v1/imports/{upload}", PermRecordingsImport, a.deleteUpload)
		route("POST /v1/meetings/import", PermRecordingsImport, a.importMeeting)
	}
	if a.livekit != nil {
		route("POST /v1/livekit/rooms/{room}/record", PermMeetingsCreate, a.recordLiveKitRoom)
		// Signed by LiveKit with its API key, checked by the handler: no
		// API key.
		route("POST /v1/livekit/webhook", PermPublic, a.liveKitWebhook)
	}
	route("GET /v1/meetings/{id}/minutes", PermMinutesRead, a.getMinutes(""))
	for _, ext := range renderingExts {
		route("GET /v1/meetings/{id}/minutes."+ext, PermMinutesRead, a.getMinutes(ext))
	}
	// Captions check their callers themselves: participants follow them
	// with a join token, keys need minutes:read.
	route("GET /v1/meetings/{id}/captions", PermPublic, a.getCaptions)
	// The room's presence stream: a key with meetings:read, or a join
	// token of the meeting; checked by the handler, as captions are.
	route("GET /v1/meetings/{id}/room", PermPublic, a.getRoom)
	// A participant names themself before joining: a join token with the
	// name right, checked by the handler; no API key.
	route("POST /v1/meetings/{id}/name", PermPublic, a.chooseName)
	// A participant declines (or accepts) being recorded: their join
	// token, checked by the handler; no API key.
	route("POST /v1/meetings/{id}/consent", PermPublic, a.setConsent)
	// Browser sign-in: open, the key comes in the body (session.go).
	route("POST /v1/session", PermPublic, a.signIn)
	route("GET /v1/session", PermPublic, a.whoAmI)
	route("DELETE /v1/session", PermPublic, a.signOut)
	route("POST /v1/keys", PermKeysManage, a.createKey)
	route("GET /v1/keys", PermKeysManage, a.listKeys)
	route("DELETE /v1/keys/{id}", PermKeysManage, a.revokeKey)
	route("GET /v1/audit", PermAuditRead, a.listAudit)
	route("GET /v1/nodes", PermAuditRead, a.listNodes)
}

// Routes lists every route the Handler serves, in registration order.
func (a *API) Routes() []Route {
	var out []Route
	a.routes(func(pattern, perm string, _ http.HandlerFunc) { out = append(out, Route{pattern, perm}) })
	return out
}

// Handler routes /v1/meetings and its sub-resources, /v1/search, /v1/mcp,
// /v1/keys, /v1/audit, /v1/imports, /v1/session and /v1/openapi.json. Every
// route asks for an API key (a bearer header or a browser's session cookie)
// holding its permission, except the OpenAPI document, the session itself
// and the captions and room streams (which take a join token too); every path and query value is checked
// before a handler sees it; unknown routes and methods are answered in the
// JSON error format.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	a.routes(func(pattern, perm string, h http.HandlerFunc) {
		if perm == PermPublic {
			mux.Handle(pattern, checkInput(h))
			return
		}
		mux.Handle(pattern, a.guard(pattern, perm, h))
	})
	return httperr.Routes(mux)
}

// Bounds on what a request's path and query may hold.
const (
	maxIDLen         = 200
	maxQueryValueLen = 1000
)

// checkInput refuses, with a 400, a path segment or query value that no
// stored row can hold: invalid UTF-8, control characters (Postgres refuses
// NUL outright) or overlong values. Handlers then only meet text the
// database can compare.
func checkInput(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if validInput(w, r) {
			next(w, r)
		}
	}
}

// validInput is checkInput's test: false once it has answered a 400.
func validInput(w http.ResponseWriter, r *http.Request) bool {
	for _, name := range []string{"id", "identity", "file", "token", "upload"} {
		v := r.PathValue(name)
		if err := usertext.CheckLine(v, maxIDLen); err != nil {
			writeError(w, http.StatusBadRequest, "bad_"+name, "the "+name+" in the path "+err.Error())
			return false
		}
	}
	for name, vs := range r.URL.Query() {
		for _, v := range vs {
			if err := usertext.CheckLine(v, maxQueryValueLen); err != nil {
				writeError(w, http.StatusBadRequest, "bad_query", "query parameter "+strconv.Quote(name)+" "+err.Error())
				return false
			}
		}
	}
	return true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	httperr.Write(w, status, code, msg)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away; nothing to do
}

// fail maps an error from the layers below to an answer.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var te *store.TransitionError
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
	case errors.As(err, &te):
		writeError(w, http.StatusConflict, "invalid_state", te.Error())
	case errors.Is(err, store.ErrLegalHold):
		writeError(w, http.StatusConflict, "legal_hold", err.Error()+": lift the hold first (PATCH /v1/meetings/{id}/retention with legal_hold false)")
	case errors.Is(err, store.ErrExpired):
		writeError(w, http.StatusGone, "expired", err.Error())
	case errors.Is(err, context.Canceled):
		writeError(w, 499, "canceled", "request canceled")
	default:
		a.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error; see the server log")
	}
}

func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("body over %d bytes", maxBody))
			return false
		}
		if errors.Is(err, io.EOF) {
			return true // an empty body stands for "all defaults"
		}
		writeError(w, http.StatusBadRequest, "bad_json", "malformed JSON body: "+err.Error())
		return false
	}
	// One JSON value is the whole body: anything after it is a client
	// bug (two requests glued together, a truncated edit) to report, not
	// to ignore.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "bad_json", "the body holds data after its JSON object: send exactly one object")
		return false
	}
	return true
}
