// Package api is Greffier's REST interface: meetings, join tokens, pipeline
// progress and minutes in JSON, WebVTT, SRT, Markdown and plain text. It
// holds no business logic of its own: it checks callers, parses requests,
// calls the store and the pipeline, and renders. Nothing imports it but
// cmd/greffier.
package api

import (
	"context"
	"crypto/subtle"
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
	"github.com/greffier/greffier/internal/usertext"
)

// Defaults for Config.
const (
	DefaultTokenTTL = 24 * time.Hour
	maxBody         = 1 << 20
)

// Config configures the API.
type Config struct {
	// Token is the bearer token every caller of /v1/meetings must present.
	// Required.
	Token string
	// TokenTTL is how long join tokens last unless a request says
	// otherwise (default 24 h).
	TokenTTL time.Duration
	// WebhookAllowPrivate accepts webhook URLs whose host is a private,
	// loopback or link-local address (default false: refused).
	WebhookAllowPrivate bool
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
	log      *slog.Logger
	now      func() time.Time
}

// New builds the API.
func New(cfg Config, d Deps) (*API, error) {
	if cfg.Token == "" {
		return nil, errors.New("api: Token is required: set an API token (GREFFIER_API_TOKEN)")
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if d.Store == nil || d.Blobs == nil || d.Ender == nil || d.Rerunner == nil || d.Signer == nil || d.Sessions == nil || d.Logger == nil {
		return nil, errors.New("api: every field of Deps is required")
	}
	return &API{cfg: cfg, store: d.Store, blobs: d.Blobs, ender: d.Ender, rerun: d.Rerunner, signer: d.Signer,
		sessions: d.Sessions, webhooks: egress.Guard{AllowPrivate: cfg.WebhookAllowPrivate},
		captions: d.Captions, log: d.Logger, now: time.Now}, nil
}

// Handler routes /v1/meetings and its sub-resources, and /v1/search.
// Every route but the captions and room streams asks for the API key (a
// bearer header or a browser's session cookie, see SessionHandler); every path
// and query value is checked before a handler sees it; unknown routes and
// methods are answered in the JSON error format.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, a.authenticate(checkInput(h)))
	}
	route("GET /v1/search", a.search)
	route("POST /v1/meetings", a.createMeeting)
	route("GET /v1/meetings", a.listMeetings)
	route("GET /v1/meetings/{id}", a.getMeeting)
	route("PATCH /v1/meetings/{id}", a.patchMeeting)
	route("POST /v1/meetings/{id}/end", a.endMeeting)
	route("POST /v1/meetings/{id}/tokens", a.createToken)
	route("DELETE /v1/meetings/{id}/tokens/{token}", a.revokeToken)
	route("POST /v1/meetings/{id}/participants/{identity}/revoke", a.revokeParticipant)
	route("GET /v1/meetings/{id}/participants", a.listParticipants)
	route("GET /v1/meetings/{id}/events", a.listEvents)
	route("PATCH /v1/meetings/{id}/participants/{identity}", a.renameParticipant)
	route("POST /v1/meetings/{id}/rerun", a.rerunMeeting)
	route("GET /v1/meetings/{id}/tracks", a.listTracks)
	route("GET /v1/meetings/{id}/tracks/{file}", a.getTrack)
	route("GET /v1/meetings/{id}/archive.webm", a.getArchive(layout.ArchiveWebM, "audio/webm", "meeting.webm"))
	route("GET /v1/meetings/{id}/mix.flac", a.getArchive(layout.ArchiveMix, "audio/flac", "mix.flac"))
	route("GET /v1/meetings/{id}/speakers/{file}", a.getSpeaker)
	route("GET /v1/meetings/{id}/minutes", a.getMinutes(""))
	for ext := range renderings {
		route("GET /v1/meetings/{id}/minutes."+ext, a.getMinutes(ext))
	}
	// Captions check their callers themselves: participants follow them
	// with a join token.
	mux.Handle("GET /v1/meetings/{id}/captions", checkInput(a.getCaptions))
	mux.Handle("GET /v1/meetings/{id}/room", checkInput(a.getRoom))
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
		for _, name := range []string{"id", "identity", "file", "token"} {
			v := r.PathValue(name)
			if err := usertext.CheckLine(v, maxIDLen); err != nil {
				writeError(w, http.StatusBadRequest, "bad_"+name, "the "+name+" in the path "+err.Error())
				return
			}
		}
		for name, vs := range r.URL.Query() {
			for _, v := range vs {
				if err := usertext.CheckLine(v, maxQueryValueLen); err != nil {
					writeError(w, http.StatusBadRequest, "bad_query", "query parameter "+strconv.Quote(name)+" "+err.Error())
					return
				}
			}
		}
		next(w, r)
	}
}

func (a *API) checkAPIToken(raw string) bool {
	return subtle.ConstantTimeCompare([]byte(raw), []byte(a.cfg.Token)) == 1
}

// authenticate lets through a caller with the API key, as a bearer header
// or as a browser session cookie; a cookie's changes must come from our own
// pages (sameOriginWrite).
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, viaCookie, ok := a.caller(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="greffier"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong API token: send Authorization: Bearer <token>, or sign in")
			return
		}
		if viaCookie && !sameOriginWrite(r) {
			writeError(w, http.StatusForbidden, "csrf", "a signed-in browser must send the "+csrfHeader+": 1 header from this site's own pages")
			return
		}
		next.ServeHTTP(w, r)
	})
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
