package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
)

// Switches sets a meeting's recording switches on the node that holds its
// media (*meeting.Tap): a host's recording and transcription, a
// participant's consent.
type Switches interface {
	SetControl(ctx context.Context, meetingID string, kind store.ControlKind, identity string, on bool) (store.ControlLog, error)
}

// switchesJSON is what a meeting records now, and every switch so far.
type switchesJSON struct {
	Recording     bool          `json:"recording"`
	Transcription bool          `json:"transcription"`
	Declined      []string      `json:"declined"`
	Controls      []controlJSON `json:"controls"`
}

type controlJSON struct {
	Kind     store.ControlKind `json:"kind"`
	Identity string            `json:"identity,omitempty"`
	On       bool              `json:"on"`
	// At is seconds on the meeting clock; 0 for a switch set before
	// anyone joined.
	At float64 `json:"at"`
}

func toSwitches(l store.ControlLog) *switchesJSON {
	out := &switchesJSON{Recording: l.On(store.ControlRecording, ""), Transcription: l.On(store.ControlTranscription, ""),
		Declined: l.Declined(), Controls: []controlJSON{}}
	if out.Declined == nil {
		out.Declined = []string{}
	}
	for _, c := range l {
		out.Controls = append(out.Controls, controlJSON{Kind: c.Kind, Identity: c.Identity, On: c.Enabled, At: float64(c.AtMS) / 1000})
	}
	return out
}

// switchMeeting starts or stops a meeting's recording or transcription.
func (a *API) switchMeeting(kind store.ControlKind, on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if _, err := a.store.Meeting(r.Context(), r.PathValue("id")); err != nil {
			a.fail(w, r, err)
			return
		}
		a.setSwitch(w, r, kind, "", on)
	}
}

func (a *API) setSwitch(w http.ResponseWriter, r *http.Request, kind store.ControlKind, identity string, on bool) {
	if l, ok := a.applySwitch(w, r, kind, identity, on); ok {
		writeJSON(w, http.StatusOK, toSwitches(l))
	}
}

// applySwitch sets a switch of the request's meeting; when it cannot, it
// answers the request and returns false.
func (a *API) applySwitch(w http.ResponseWriter, r *http.Request, kind store.ControlKind, identity string, on bool) (store.ControlLog, bool) {
	if a.switches == nil {
		writeError(w, http.StatusServiceUnavailable, "no_switches", "this server does not hold meetings' media: send the request to one that does")
		return nil, false
	}
	l, err := a.switches.SetControl(r.Context(), r.PathValue("id"), kind, identity, on)
	if err != nil {
		if te, ok := errors.AsType[*store.TransitionError](err); ok {
			writeError(w, http.StatusConflict, "meeting_ended", "meeting "+te.MeetingID+" is "+string(te.From)+
				": its recording can no longer be started or stopped")
			return nil, false
		}
		if l == nil {
			a.fail(w, r, err)
			return nil, false
		}
		// The switch is set; some track could not follow it, which the
		// recorder lists among the meeting's failed tracks.
		a.log.Error("recording switch set, not applied to every track", "meeting", r.PathValue("id"), "err", err)
	}
	return l, true
}

type consentRequest struct {
	Record *bool `json:"record"`
}

// setConsent lets a participant decline to be recorded, or accept again,
// with their join token: their audio is still heard by the others.
func (a *API) setConsent(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	c, ok := a.joinClaims(r, id, token.RightPublish)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="greffier"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "send Authorization: Bearer <join token of this meeting>")
		return
	}
	var req consentRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Record == nil {
		writeError(w, http.StatusBadRequest, "bad_consent", `send {"record": false} to decline being recorded, {"record": true} to accept`)
		return
	}
	a.setSwitch(w, r, store.ControlConsent, c.Identity, *req.Record)
}

// getSwitches answers what a meeting records now.
func (a *API) getSwitches(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, err := a.store.Meeting(r.Context(), id); err != nil {
		a.fail(w, r, err)
		return
	}
	out, err := a.switchesOf(r.Context(), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (a *API) switchesOf(ctx context.Context, meetingID string) (*switchesJSON, error) {
	l, err := a.store.Controls(ctx, meetingID)
	if err != nil {
		return nil, err
	}
	return toSwitches(l), nil
}

// audioNotKept answers 409 for a meeting that keeps only its words: it
// has no recording to serve, and never had one.
func audioNotKept(w http.ResponseWriter, m store.Meeting) bool {
	if m.KeepAudio {
		return false
	}
	writeError(w, http.StatusConflict, "audio_not_kept", "meeting "+m.ID+` keeps only its words ("keep_audio": false): `+
		"its audio was transcribed live and never stored")
	return true
}
