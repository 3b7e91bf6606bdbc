package store

import (
	"fmt"
	"time"
)

// MeetingState is where a meeting is in its life. Only the transitions in
// allowedTransitions may happen; Transition enforces them.
type MeetingState string

const (
	// MeetingCreated: the meeting exists, nobody has joined yet.
	MeetingCreated MeetingState = "created"
	// MeetingLive: someone joined; the meeting clock has started.
	MeetingLive MeetingState = "live"
	// MeetingEnded: no more media; the pipeline is turning recordings into minutes.
	MeetingEnded MeetingState = "ended"
	// MeetingReady: minutes are assembled and complete: every stretch of
	// recorded speech was transcribed.
	MeetingReady MeetingState = "ready"
	// MeetingIncomplete: minutes are assembled but some stretch of speech
	// is missing from them (not recorded, not separated, not
	// transcribed); the minutes' missing list says which and why.
	MeetingIncomplete MeetingState = "incomplete"
	// MeetingFailed: the pipeline could not produce minutes; see the failure.
	MeetingFailed MeetingState = "failed"
	// MeetingDeleting: deletion was asked for; a job is removing every
	// trace of the meeting, after which it is not found at all. A live
	// meeting cannot be deleted: it is ended first.
	MeetingDeleting MeetingState = "deleting"
	// MeetingImporting: recordings were uploaded and a job is turning them
	// into the meeting's tracks; it ends (and the pipeline takes over) once
	// every file is stored, or fails saying which file could not be read.
	MeetingImporting MeetingState = "importing"
)

var allowedTransitions = map[MeetingState][]MeetingState{
	MeetingCreated:    {MeetingLive, MeetingEnded, MeetingDeleting},
	MeetingLive:       {MeetingEnded},
	MeetingEnded:      {MeetingReady, MeetingIncomplete, MeetingFailed, MeetingDeleting},
	MeetingReady:      {MeetingEnded, MeetingDeleting}, // a re-run of the pipeline, or deletion
	MeetingIncomplete: {MeetingEnded, MeetingDeleting},
	MeetingFailed:     {MeetingEnded, MeetingDeleting},
	MeetingDeleting:   {},
	MeetingImporting:  {MeetingEnded, MeetingFailed, MeetingDeleting},
}

// Finished reports whether the pipeline is done with a meeting in state s,
// whatever its outcome.
func (s MeetingState) Finished() bool {
	return s == MeetingReady || s == MeetingIncomplete || s == MeetingFailed
}

// Valid reports whether s is a known state.
func (s MeetingState) Valid() bool {
	_, ok := allowedTransitions[s]
	return ok
}

// CanBecome reports whether a meeting in state s may move to next.
func (s MeetingState) CanBecome(next MeetingState) bool {
	for _, n := range allowedTransitions[s] {
		if n == next {
			return true
		}
	}
	return false
}

// TransitionError says a meeting could not move between two states.
type TransitionError struct {
	MeetingID string
	From, To  MeetingState
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("meeting %s is %s and cannot become %s", e.MeetingID, e.From, e.To)
}

// Meeting is one recorded meeting.
type Meeting struct {
	ID    string
	Title string
	State MeetingState
	// CreatedAt is when the meeting was created.
	CreatedAt time.Time
	// StartedAt is the zero of the meeting clock: the first join. Zero
	// until someone joins.
	StartedAt time.Time
	EndedAt   time.Time
	// Language is the spoken language hint for the backends ("" = detect).
	Language string
	// Failure says why the pipeline failed, when State is MeetingFailed.
	Failure string
	// Run counts re-runs of the pipeline; jobs of an older run are stale.
	Run int
	// Captions is set when live captions are wanted.
	Captions bool
	// KeepAudio is false for a meeting that keeps only its words: its
	// tracks are heard by the live transcription and never stored, and
	// each speech segment's audio goes once it is transcribed.
	KeepAudio bool
	// WebhookURL, when set, is told of the meeting's progress.
	WebhookURL string
	// CreatedBy is the id of the API key that created the meeting ("" for
	// the bootstrap key and meetings older than keys).
	CreatedBy string
	// Glossary is the host's list of words (names, jargon) the speech
	// backend is told to expect, in the host's order.
	Glossary []string
}

// Participant is one speaker of a meeting, keyed by the identity in their
// join token, stable across rejoins.
type Participant struct {
	MeetingID   string
	Identity    string
	DisplayName string
	JoinedAt    time.Time
}
