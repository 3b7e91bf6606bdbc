package meeting

import (
	"context"
	"errors"
	"time"

	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/recorder"
)

// LivePath is the pipeline's live path (*jobs.Pipeline).
type LivePath interface {
	Listen(t store.Track) *jobs.LiveTrack
}

// Live says who hears each track while it is recorded
// (recorder.Config.Listen): the pipeline's live path, which finds and
// transcribes speech during the meeting, and, with a captioner, live
// captions under the speaker's name.
type Live struct {
	store     *store.Store
	path      LivePath
	captioner *captions.Captioner
	hub       *captions.Hub
}

// NewLive hears tracks with the live path and, when captioner and hub are
// not nil, live captions.
func NewLive(st *store.Store, path LivePath, captioner *captions.Captioner, hub *captions.Hub) (*Live, error) {
	if st == nil || path == nil || (captioner == nil) != (hub == nil) {
		return nil, errors.New("meeting: NewLive needs a store and a live path, and a captions hub with a captioner")
	}
	return &Live{store: st, path: path, captioner: captioner, hub: hub}, nil
}

// Listen returns what hears track t, whose Opus pre-skip is codecDelay.
func (l *Live) Listen(t store.Track, codecDelay time.Duration) recorder.Listener {
	lt := l.path.Listen(t)
	if l.captioner == nil {
		return lt
	}
	// Captions hear each block, and the track's end, before the live
	// path, as when the live path fed them: neither depends on the other.
	return listeners{l.openCaptions(t, codecDelay), lt}
}

// openCaptions starts live captions for a track, with the speaker's name
// and the meeting clock's zero; the meeting's captions setting (it may
// have been set before this process started) goes to the hub.
func (l *Live) openCaptions(t store.Track, codecDelay time.Duration) *captions.Listener {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr := captions.Track{MeetingID: t.MeetingID, Speaker: t.Identity, Name: t.Identity, StartMS: t.StartMS}
	if m, err := l.store.Meeting(ctx, t.MeetingID); err == nil {
		tr.ClockZero = m.StartedAt
		l.hub.SetEnabled(m.ID, m.Captions)
	}
	if ps, err := l.store.Participants(ctx, t.MeetingID); err == nil {
		for _, p := range ps {
			if p.Identity == t.Identity {
				tr.Name = p.DisplayName
			}
		}
	}
	return l.captioner.Listen(tr, codecDelay)
}

// listeners hands every block to each listener in turn.
type listeners []recorder.Listener

func (ls listeners) Block(ms int64, opus []byte, level int) {
	for _, l := range ls {
		l.Block(ms, opus, level)
	}
}

func (ls listeners) Close(complete bool) {
	for _, l := range ls {
		l.Close(complete)
	}
}
