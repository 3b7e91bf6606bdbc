package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
)

// CaptionHub is where live captions are published and followed.
type CaptionHub interface {
	SubscribeAs(meetingID string, who captions.Follower) *captions.Subscription
	SetEnabled(meetingID string, on bool)
	// EndFollower ends the streams of a join token (tokenID) or of all
	// an identity's tokens (tokenID ""), once they are revoked.
	EndFollower(meetingID, identity, tokenID string) int
}

// heartbeat keeps idle SSE connections open through proxies.
const heartbeat = 15 * time.Second

// getCaptions streams a meeting's live captions as Server-Sent Events
// (event "caption", JSON data, id = the caption's sequence number). Hosts
// use the API token; participants their join token (listen right).
func (a *API) getCaptions(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	who, ok := a.mayFollow(r.Context(), r, id)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="greffier"`)
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"send Authorization: Bearer <API token or join token>, or ?token=<join token> of this meeting with the listen right")
		return
	}
	m, err := a.store.Meeting(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if a.captions == nil {
		writeError(w, http.StatusNotFound, "captions_unavailable", "no streaming speech backend is configured (GREFFIER_CAPTIONS_URL)")
		return
	}
	if m.State != store.MeetingCreated && m.State != store.MeetingLive {
		writeError(w, http.StatusConflict, "meeting_ended", "meeting "+m.ID+" is "+string(m.State)+": its captions are in the minutes")
		return
	}
	if owner, ok := a.mediaElsewhere(r.Context(), m.ID); ok {
		// Captions are made where the media is: follow them there.
		w.Header().Set("Location", owner+r.URL.RequestURI())
		writeError(w, http.StatusTemporaryRedirect, "meeting_on_another_node", "this meeting's captions are served by "+owner)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "no_streaming", "this connection cannot stream")
		return
	}
	sub := a.captions.SubscribeAs(m.ID, who)
	defer sub.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, ": captions of %s, enabled=%t\n\n", m.ID, m.Captions)
	flusher.Flush()
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Done():
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			flusher.Flush()
			return
		case <-tick.C:
			// A revocation or an end handled by another node reaches
			// this stream here (this node's are at once, through sub).
			if why := a.stillFollowing(r.Context(), m.ID, who); why != "" {
				fmt.Fprintf(w, "event: end\ndata: {\"reason\":%q}\n\n", why)
				flusher.Flush()
				return
			}
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		case c := <-sub.C:
			b, _ := json.Marshal(c) // a Caption always marshals
			fmt.Fprintf(w, "id: %d\nevent: caption\ndata: %s\n\n", c.Seq, b)
			flusher.Flush()
		}
	}
}

// mayFollow accepts an API key with minutes:read for a meeting it sees
// (bearer or session cookie, through principal), or a join token of this
// meeting that may listen and was not revoked, and says who follows (zero
// for a key). EventSource cannot set headers, so browsers pass a join
// token in ?token=; an API key is never taken from a URL, where logs,
// proxies and browser history would keep it.
func (a *API) mayFollow(ctx context.Context, r *http.Request, meetingID string) (captions.Follower, bool) {
	if p, err := a.principal(r); err == nil {
		if !p.Can(PermMinutesRead) {
			return captions.Follower{}, false
		}
		if !p.SeesAll() {
			m, err := a.store.Meeting(ctx, meetingID)
			if err != nil || !p.sees(m) {
				return captions.Follower{}, false
			}
		}
		return captions.Follower{}, true
	}
	raw, ok := token.FromAuthorization(r.Header.Get("Authorization"))
	if !ok {
		raw = r.URL.Query().Get("token")
	}
	c, err := a.signer.Verify(raw)
	if err != nil || c.MeetingID != meetingID || !c.Can(token.RightListen) {
		return captions.Follower{}, false
	}
	revoked, err := a.store.JoinTokenRevoked(ctx, meetingID, c.Identity, c.ID)
	if err != nil {
		a.log.Error("checking a join token's revocation", "meeting", meetingID, "err", err)
		return captions.Follower{}, false
	}
	return captions.Follower{Identity: c.Identity, TokenID: c.ID}, !revoked
}

// stillFollowing says why an open caption stream must end ("" if it need
// not): its join token was revoked, or the meeting is no longer live. A
// database error ends nothing: the next check decides.
func (a *API) stillFollowing(ctx context.Context, meetingID string, who captions.Follower) string {
	m, err := a.store.Meeting(ctx, meetingID)
	if err != nil {
		return ""
	}
	if m.State != store.MeetingCreated && m.State != store.MeetingLive {
		return "meeting_ended"
	}
	if who.Identity == "" {
		return ""
	}
	if revoked, err := a.store.JoinTokenRevoked(ctx, meetingID, who.Identity, who.TokenID); err == nil && revoked {
		return "token_revoked"
	}
	return ""
}

type patchMeetingRequest struct {
	Captions   *bool   `json:"captions"`
	WebhookURL *string `json:"webhook_url"`
	// Glossary replaces the meeting's glossary ([] clears it); segments
	// transcribed from then on, and re-runs, are told it.
	Glossary *[]string `json:"glossary"`
	// Recording and Transcription start or stop them, as the
	// /recording/start|stop and /transcription/start|stop routes do.
	Recording     *bool `json:"recording"`
	Transcription *bool `json:"transcription"`
}

// patchMeeting changes a meeting's settings: live captions on/off,
// webhook, glossary.
func (a *API) patchMeeting(w http.ResponseWriter, r *http.Request) {
	var req patchMeetingRequest
	if !decodeBody(w, r, &req) {
		return
	}
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if req.Glossary != nil {
		if msg := checkGlossary(*req.Glossary); msg != "" {
			writeError(w, http.StatusBadRequest, "bad_glossary", msg)
			return
		}
	}
	if req.WebhookURL != nil {
		if msg := a.checkWebhook(r.Context(), *req.WebhookURL); msg != "" {
			writeError(w, http.StatusBadRequest, "bad_webhook", msg)
			return
		}
		if err := a.store.SetWebhook(r.Context(), m.ID, *req.WebhookURL); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if req.Glossary != nil {
		if err := a.store.SetGlossary(r.Context(), m.ID, *req.Glossary); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	if req.Captions != nil {
		if err := a.setCaptions(r, m.ID, *req.Captions); err != nil {
			var ae *answerError
			if errors.As(err, &ae) {
				writeError(w, ae.status, ae.code, ae.msg)
				return
			}
			a.fail(w, r, err)
			return
		}
	}
	for kind, on := range map[store.ControlKind]*bool{store.ControlRecording: req.Recording, store.ControlTranscription: req.Transcription} {
		if on == nil {
			continue
		}
		if _, ok := a.applySwitch(w, r, kind, "", *on); !ok {
			return
		}
	}
	if m, err = a.store.Meeting(r.Context(), m.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	out := toJSON(m)
	if out.Switches, err = a.switchesOf(r.Context(), m.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

type answerError struct {
	status    int
	code, msg string
}

func (e *answerError) Error() string { return e.msg }

func (a *API) setCaptions(r *http.Request, meetingID string, on bool) error {
	if on && a.captions == nil {
		return &answerError{http.StatusConflict, "captions_unavailable",
			"no streaming speech backend is configured: set GREFFIER_CAPTIONS_URL"}
	}
	if err := a.store.SetCaptions(r.Context(), meetingID, on); err != nil {
		return err
	}
	if a.captions != nil {
		a.captions.SetEnabled(meetingID, on)
	}
	return nil
}

// mediaElsewhere returns the base URL of the live node holding a
// meeting's media when it is not this one (several nodes).
func (a *API) mediaElsewhere(ctx context.Context, meetingID string) (string, bool) {
	if a.cfg.NodeID == "" {
		return "", false
	}
	owner, err := a.store.MeetingNode(ctx, meetingID)
	if err != nil || owner.ID == "" || owner.ID == a.cfg.NodeID || owner.URL == "" ||
		owner.HeartbeatAt.Before(a.now().Add(-a.nodeTimeout)) {
		return "", false
	}
	return strings.TrimSuffix(owner.URL, "/"), true
}
