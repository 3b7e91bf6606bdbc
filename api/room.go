package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
)

// roomPoll is how often a room stream looks for news in the database. It
// bounds how late a page learns who speaks and that the meeting ended
// (the issue asks for 2 s), whichever node ended it. Each open page costs
// three small indexed queries per poll (events, the meeting, its
// recording switches).
const roomPoll = 400 * time.Millisecond

type roomMember struct {
	Identity string `json:"identity"`
	Name     string `json:"name"`
	Here     bool   `json:"here"`
	Speaking bool   `json:"speaking"`
}

type roomJSON struct {
	State        store.MeetingState `json:"state"`
	Captions     bool               `json:"captions"`
	Participants []roomMember       `json:"participants"`
	// Recording and Transcription say what the meeting records now, and
	// Declined who declined to be recorded: every participant is told
	// whenever they change.
	Recording     bool     `json:"recording"`
	Transcription bool     `json:"transcription"`
	Declined      []string `json:"declined"`
}

// getRoom streams what a meeting's pages show live, as Server-Sent Events:
// "room" (who is invited, who is here, who speaks, the meeting's state)
// whenever it changes, then "ended" once the meeting is no longer live,
// or "end" with a reason when the caller's join token was revoked.
// Callers: the API key (bearer or signed-in browser) or any join token of
// the meeting, in the Authorization header or, for EventSource, ?token=.
func (a *API) getRoom(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.PathValue("id")
	who, ok := a.mayWatchRoom(ctx, r, id)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="greffier"`)
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"send Authorization: Bearer <API token or join token>, ?token=<join token of this meeting>, or sign in")
		return
	}
	m, err := a.store.Meeting(ctx, id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "no_streaming", "this connection cannot stream")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	var (
		seq      int64
		members  = []roomMember{}
		index    = map[string]int{}
		last     []byte
		lastBeat = time.Now()
		lastAuth = time.Now()
	)
	loadNames := func() error {
		ps, err := a.store.Participants(ctx, id)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if i, ok := index[p.Identity]; ok {
				members[i].Name = p.DisplayName
				continue
			}
			index[p.Identity] = len(members)
			members = append(members, roomMember{Identity: p.Identity, Name: p.DisplayName})
		}
		return nil
	}
	if err := loadNames(); err != nil {
		a.log.Error("room stream: participants", "meeting", id, "err", err)
	}
	tick := time.NewTicker(roomPoll)
	defer tick.Stop()
	for {
		es, err := a.store.EventsAfter(ctx, id, seq)
		if err == nil {
			for _, e := range es {
				seq = e.Seq
				if !presenceEvent(e.Kind) {
					continue // the switches are read below
				}
				i, ok := index[e.Identity]
				if !ok {
					// Someone joined with a token minted after we loaded
					// the names.
					_ = loadNames()
					if i, ok = index[e.Identity]; !ok {
						index[e.Identity] = len(members)
						members = append(members, roomMember{Identity: e.Identity, Name: e.Identity})
						i = len(members) - 1
					}
				}
				switch e.Kind {
				case "joined":
					members[i].Here = true
				case "left":
					members[i].Here, members[i].Speaking = false, false
				case "speaking_started":
					members[i].Speaking, members[i].Here = true, true
				case "speaking_stopped":
					members[i].Speaking = false
				}
			}
		}
		if fresh, err := a.store.Meeting(ctx, id); err == nil {
			m = fresh
		}
		room := roomJSON{State: m.State, Captions: m.Captions, Participants: members, Recording: true, Transcription: true, Declined: []string{}}
		if l, err := a.store.Controls(ctx, id); err == nil {
			room.Recording, room.Transcription = l.On(store.ControlRecording, ""), l.On(store.ControlTranscription, "")
			if d := l.Declined(); d != nil {
				room.Declined = d
			}
		}
		b, _ := json.Marshal(room)
		if string(b) != string(last) {
			last = b
			fmt.Fprintf(w, "event: room\ndata: %s\n\n", b)
			flusher.Flush()
		}
		if m.State != store.MeetingCreated && m.State != store.MeetingLive {
			fmt.Fprintf(w, "event: ended\ndata: {\"state\":%q}\n\n", m.State)
			flusher.Flush()
			return
		}
		if who.Identity != "" && time.Since(lastAuth) >= heartbeat {
			lastAuth = time.Now()
			if revoked, err := a.store.JoinTokenRevoked(ctx, id, who.Identity, who.ID); err == nil && revoked {
				fmt.Fprint(w, "event: end\ndata: {\"reason\":\"token_revoked\"}\n\n")
				flusher.Flush()
				return
			}
		}
		if time.Since(lastBeat) >= heartbeat {
			lastBeat = time.Now()
			fmt.Fprint(w, ": keep-alive\n\n")
			flusher.Flush()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// mayWatchRoom accepts an API key with meetings:read (bearer or session
// cookie) for a meeting it sees, or a join token of this meeting that was
// not revoked, whatever its rights: every participant sees who is here.
func (a *API) mayWatchRoom(ctx context.Context, r *http.Request, meetingID string) (token.Claims, bool) {
	if p, err := a.principal(r); err == nil {
		if !p.Can(PermMeetingsRead) {
			return token.Claims{}, false
		}
		if !p.SeesAll() {
			m, err := a.store.Meeting(ctx, meetingID)
			if err != nil || !p.sees(m) {
				return token.Claims{}, false
			}
		}
		return token.Claims{}, true
	}
	raw, hasBearer := token.FromAuthorization(r.Header.Get("Authorization"))
	if !hasBearer {
		raw = r.URL.Query().Get("token")
	}
	c, err := a.signer.Verify(raw)
	if err != nil || c.MeetingID != meetingID {
		return token.Claims{}, false
	}
	revoked, err := a.store.JoinTokenRevoked(ctx, meetingID, c.Identity, c.ID)
	if err != nil {
		a.log.Error("checking a join token's revocation", "meeting", meetingID, "err", err)
		return token.Claims{}, false
	}
	return c, !revoked
}

// presenceEvent reports whether an event says who is here or speaking.
func presenceEvent(kind string) bool {
	switch kind {
	case "joined", "left", "speaking_started", "speaking_stopped":
		return true
	}
	return false
}
