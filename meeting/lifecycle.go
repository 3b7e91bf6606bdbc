// Package meeting owns a meeting's life between the parts that serve it:
// who may join its media, that each track the SFU receives is recorded and
// heard while it is (by the pipeline's live path, by live captions), the
// log of what happened in it, and how it ends (the pipeline's
// transaction, then the media, then the captions) or runs again. It orders the parts; each part does its own
// work. It imports the parts (sfu, livekit, recorder, jobs, captions, the
// store); none of them imports it, and it knows no HTTP: cmd/greffier
// wires it between the SFU, the LiveKit source, the recorder and the API.
// Meetings held in LiveKit rooms are Rooms' (rooms.go).
package meeting

import (
	"context"
	"errors"
	"fmt"

	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/internal/store"
)

// Pipeline ends and re-runs meetings in the job pipeline (*jobs.Pipeline).
type Pipeline interface {
	// EndMeeting marks the meeting ended and enqueues what then follows,
	// in one transaction.
	EndMeeting(ctx context.Context, meetingID string) (store.Meeting, error)
	Rerun(ctx context.Context, meetingID string) (store.Meeting, error)
}

// Media closes a meeting's media sessions (*sfu.SFU).
type Media interface {
	// EndMeeting refuses new joins, closes every session and returns once
	// every recording of the meeting is stored.
	EndMeeting(ctx context.Context, meetingID string) error
}

// Deps are the parts a Lifecycle orders.
type Deps struct {
	Store    *store.Store // required
	Pipeline Pipeline     // required
	Media    Media        // required
	// Captions is optional: without it there are no live captions.
	Captions *captions.Hub
}

// Lifecycle ends and re-runs meetings (the API's and the idle reaper's
// way to do it).
type Lifecycle struct {
	store    *store.Store
	pipeline Pipeline
	media    Media
	captions *captions.Hub
}

// New returns the life cycle of the meetings in d.Store.
func New(d Deps) (*Lifecycle, error) {
	if d.Store == nil || d.Pipeline == nil || d.Media == nil {
		return nil, errors.New("meeting: Deps.Store, Deps.Pipeline and Deps.Media are required")
	}
	return &Lifecycle{store: d.Store, pipeline: d.Pipeline, media: d.Media, captions: d.Captions}, nil
}

// EndMeeting ends a live (or never joined) meeting: the pipeline's
// transaction first, so that its minutes can be assembled as soon as the
// last words are transcribed while the recordings upload; then the media,
// which stores every recording, the call returning once they all are;
// then the captions, once no track can publish a word any more, so that
// the meeting's followers get its last words and the hub keeps nothing of
// it. A meeting that cannot end is refused before anything is touched.
func (l *Lifecycle) EndMeeting(ctx context.Context, meetingID string) (store.Meeting, error) {
	m, err := l.store.Meeting(ctx, meetingID)
	if err != nil {
		return m, err
	}
	if !m.State.CanBecome(store.MeetingEnded) || m.State.Finished() || m.State == store.MeetingImporting {
		return m, &store.TransitionError{MeetingID: meetingID, From: m.State, To: store.MeetingEnded}
	}
	if m, err = l.pipeline.EndMeeting(ctx, meetingID); err != nil {
		return m, err
	}
	err = l.media.EndMeeting(ctx, meetingID)
	if l.captions != nil {
		// Also when the media could not all be closed: the meeting has
		// ended, its caption streams end with it.
		l.captions.Forget(meetingID)
	}
	if err != nil {
		return m, fmt.Errorf("close the meeting's media: %w", err)
	}
	return m, nil
}

// Rerun runs the pipeline again over an ended meeting's recordings.
func (l *Lifecycle) Rerun(ctx context.Context, meetingID string) (store.Meeting, error) {
	return l.pipeline.Rerun(ctx, meetingID)
}
