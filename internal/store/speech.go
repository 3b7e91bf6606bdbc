package store

import "time"

// SegmentStatus is where a speech segment's transcription is.
type SegmentStatus string

const (
	SegmentPending     SegmentStatus = "pending"
	SegmentTranscribed SegmentStatus = "transcribed"
	SegmentFailed      SegmentStatus = "failed"
)

// SpeechSegment is one stretch of voice on one track, cut at silence, with
// its transcript once it has one. Its natural key is (TrackID, StartMS).
type SpeechSegment struct {
	MeetingID string
	TrackID   string
	Identity  string
	// StartMS and EndMS are on the meeting clock.
	StartMS int64
	EndMS   int64
	// AudioStartMS is where the segment's audio (AudioKey) begins on the
	// meeting clock: StartMS less the padding kept before the voice.
	AudioStartMS int64
	AudioKey     string
	Status       SegmentStatus
	Text         string
	Words        []Word
	Language     string
	// Failure says why transcription failed, when Status is SegmentFailed.
	Failure  string
	Attempts int
	// WaitingSince is when a pending segment began waiting for its
	// backend (down, rate-limiting, failing and retried); zero while it
	// does not. WaitBackend names that backend and LastError says what it
	// last answered. All three clear when the segment is transcribed or
	// fails for good.
	WaitingSince time.Time
	WaitBackend  string
	LastError    string
}

// Word is one recognised word on the meeting clock.
type Word struct {
	Text    string `json:"text"`
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
}
