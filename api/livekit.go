package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/usertext"
	"github.com/greffier/greffier/livekit"
)

// maxRoomLen bounds a LiveKit room name, as LiveKit's own API does.
const maxRoomLen = 256

// LiveKit records LiveKit rooms (*meeting.Rooms with *livekit.Webhooks).
type LiveKit interface {
	// Record records room as a meeting, or returns the meeting recording
	// it already (created false).
	Record(ctx context.Context, room, title, language, createdBy string) (m store.Meeting, created bool, err error)
	// RoomStarted records room when the configuration says so (ok).
	RoomStarted(ctx context.Context, room string) (m store.Meeting, ok bool, err error)
	// RoomFinished ends the meeting recording room, if any.
	RoomFinished(ctx context.Context, room string) error
	// ReadWebhook checks and reads LiveKit's webhook; an error wrapping
	// livekit.ErrWebhookNotSigned when it is not LiveKit's.
	ReadWebhook(r *http.Request) (livekit.Webhook, error)
}

type recordRoomRequest struct {
	Title    string `json:"title"`
	Language string `json:"language"`
}

// recordLiveKitRoom records a LiveKit room as a meeting: 201 with a new
// meeting, 200 with the meeting already recording the room.
func (a *API) recordLiveKitRoom(w http.ResponseWriter, r *http.Request) {
	var req recordRoomRequest
	if !decodeBody(w, r, &req) {
		return
	}
	room := r.PathValue("room")
	if err := usertext.CheckLine(room, maxRoomLen); err != nil || strings.TrimSpace(room) == "" {
		writeError(w, http.StatusBadRequest, "bad_room", "room name must be a LiveKit room's name: one line, at most "+
			strconv.Itoa(maxRoomLen)+" bytes")
		return
	}
	if !checkTitleAndLanguage(w, &req.Title, req.Language) {
		return
	}
	p, _ := PrincipalFrom(r.Context())
	m, created, err := a.livekit.Record(r.Context(), room, req.Title, req.Language, p.KeyID)
	if err != nil {
		if m.ID == "" {
			a.fail(w, r, err)
			return
		}
		a.log.Warn("could not join a LiveKit room", "meeting", m.ID, "room", room, "err", err)
		writeError(w, http.StatusBadGateway, "livekit_unreachable", "Greffier could not join the LiveKit room (meeting "+m.ID+
			" ended with nothing recorded): "+err.Error()+"; check GREFFIER_LIVEKIT_URL and its API key and secret")
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		a.log.Info("meeting created", "meeting", m.ID, "title", m.Title, "livekit_room", room)
	}
	w.Header().Set("Location", "/v1/meetings/"+m.ID)
	writeJSON(w, status, toJSON(m))
}

// liveKitWebhook acts on LiveKit's room_started and room_finished
// webhooks; a request LiveKit did not sign gets 401 and changes nothing.
// Other events are acknowledged and ignored, so LiveKit does not retry them.
func (a *API) liveKitWebhook(w http.ResponseWriter, r *http.Request) {
	ev, err := a.livekit.ReadWebhook(r)
	if errors.Is(err, livekit.ErrWebhookNotSigned) {
		a.log.Warn("refused a LiveKit webhook", "remote", r.RemoteAddr, "err", err)
		writeError(w, http.StatusUnauthorized, "unauthorized", err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_webhook", err.Error())
		return
	}
	switch ev.Event {
	case livekit.EventRoomStarted:
		m, ok, err := a.livekit.RoomStarted(r.Context(), ev.Room)
		if err != nil {
			// LiveKit retries a failed delivery: the room may be
			// joined then.
			a.log.Error("could not record a started LiveKit room", "room", ev.Room, "err", err)
			writeError(w, http.StatusBadGateway, "livekit_unreachable", "could not record room "+strconv.Quote(ev.Room)+": "+err.Error())
			return
		}
		if ok {
			a.log.Info("recording a started LiveKit room", "room", ev.Room, "meeting", m.ID)
		}
	case livekit.EventRoomFinished:
		if err := a.livekit.RoomFinished(r.Context(), ev.Room); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}
