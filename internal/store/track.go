package store

import "time"

// TrackState is where a recorded track segment is.
type TrackState string

const (
	// TrackRecording: packets are being spooled to local disk.
	TrackRecording TrackState = "recording"
	// TrackStored: the WebM is finalized and confirmed in blob storage.
	TrackStored TrackState = "stored"
	// TrackRecovered: the process died while recording; the spool was
	// finalized at start-up and stored. GapMS says how much was lost.
	TrackRecovered TrackState = "recovered"
	// TrackFailed: the recording could not be stored; Failure says why.
	TrackFailed TrackState = "failed"
)

// Track is one track segment: one WebM of one participant's audio, from a
// join (or SSRC change) to a leave. A participant may have several.
type Track struct {
	ID        string
	MeetingID string
	Identity  string
	SSRC      uint32
	State     TrackState
	// StartMS is where the track's first sample sits on the meeting clock.
	StartMS int64
	// DurationMS is the track's length, silence and loss included.
	DurationMS int64
	BlobKey    string
	Size       int64
	SHA256     string
	// GapMS is audio known lost at the end of a recovered track.
	GapMS   int64
	Failure string
	// Gaps are the stretches inside or after the track that were heard
	// but not recorded. FinishTrack replaces the track's stored gaps with
	// them; reads leave it empty (Gaps lists a meeting's).
	Gaps []TrackGap
	// SpeechDetected is set once voice activity detection has cut the
	// track into speech segments, or given up: then DetectFailure says why.
	SpeechDetected bool
	DetectFailure  string
	CreatedAt      time.Time
	// VoicesState says whether the track holds several voices to tell
	// apart ("" no; VoicesPending, VoicesDone, VoicesFailed), Voices who
	// spoke when once done, VoicesFailure why not.
	VoicesState   VoicesState
	Voices        []VoiceTurn
	VoicesFailure string
}

// VoicesState is where a shared-microphone track's diarization is.
type VoicesState string

const (
	VoicesPending VoicesState = "pending"
	VoicesDone    VoicesState = "done"
	VoicesFailed  VoicesState = "failed"
)

// VoiceTurn is one voice speaking on a track, in ms from the track's start.
type VoiceTurn struct {
	Label   string `json:"label"`
	StartMS int64  `json:"start_ms"`
	EndMS   int64  `json:"end_ms"`
}

// TrackGap is a stretch of one track's audio that was not recorded, on the
// meeting clock, and why: the minutes list it as missing.
type TrackGap struct {
	TrackID   string
	MeetingID string
	Identity  string
	StartMS   int64
	// EndMS is where the gap ends; while it is still open (the track is
	// recording and nothing is written) it equals StartMS.
	EndMS  int64
	Reason string
}
