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
	"strings"
	"time"

	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/egress"
	"github.com/greffier/greffier/internal/layout"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
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
}

// Ender ends a meeting: media first, then the pipeline's transaction.
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
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/search", a.search)
	mux.HandleFunc("POST /v1/meetings", a.createMeeting)
	mux.HandleFunc("GET /v1/meetings", a.listMeetings)
	mux.HandleFunc("GET /v1/meetings/{id}", a.getMeeting)
	mux.HandleFunc("PATCH /v1/meetings/{id}", a.patchMeeting)
	mux.HandleFunc("POST /v1/meetings/{id}/end", a.endMeeting)
	mux.HandleFunc("POST /v1/meetings/{id}/tokens", a.createToken)
	mux.HandleFunc("DELETE /v1/meetings/{id}/tokens/{token}", a.revokeToken)
	mux.HandleFunc("POST /v1/meetings/{id}/participants/{identity}/revoke", a.revokeParticipant)
	mux.HandleFunc("GET /v1/meetings/{id}/participants", a.listParticipants)
	mux.HandleFunc("GET /v1/meetings/{id}/events", a.listEvents)
	mux.HandleFunc("PATCH /v1/meetings/{id}/participants/{identity}", a.renameParticipant)
	mux.HandleFunc("POST /v1/meetings/{id}/rerun", a.rerunMeeting)
	mux.HandleFunc("GET /v1/meetings/{id}/tracks", a.listTracks)
	mux.HandleFunc("GET /v1/meetings/{id}/tracks/{file}", a.getTrack)
	mux.HandleFunc("GET /v1/meetings/{id}/archive.webm", a.getArchive(layout.ArchiveWebM, "audio/webm", "meeting.webm"))
	mux.HandleFunc("GET /v1/meetings/{id}/mix.flac", a.getArchive(layout.ArchiveMix, "audio/flac", "mix.flac"))
	mux.HandleFunc("GET /v1/meetings/{id}/minutes", a.getMinutes(""))
	for ext := range renderings {
		mux.HandleFunc("GET /v1/meetings/{id}/minutes."+ext, a.getMinutes(ext))
	}
	top := http.NewServeMux()
	// Captions check their callers themselves: participants follow them
	// with a join token.
	top.HandleFunc("GET /v1/meetings/{id}/captions", a.getCaptions)
	top.Handle("/", a.authenticate(mux))
	return top
}

func (a *API) checkAPIToken(raw string) bool {
	return subtle.ConstantTimeCompare([]byte(raw), []byte(a.cfg.Token)) == 1
}

func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !a.checkAPIToken(raw) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="greffier"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "missing or wrong API token: send Authorization: Bearer <token>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Error is the body of every error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]Error{"error": {Code: code, Message: msg}})
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
	return true
}
