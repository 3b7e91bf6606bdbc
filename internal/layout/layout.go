// Package layout builds every object key Greffier stores, from ids Greffier
// generated (never from user text), so disk and S3 hold the same tree.
package layout

import "fmt"

// Track is a recorded track segment: one WebM per participant track.
func Track(meetingID, trackID string) string {
	return fmt.Sprintf("meetings/%s/tracks/%s.webm", meetingID, trackID)
}

// SpeechAudio is the audio of one speech segment, cut from its track and
// sent to the transcription backend: an Ogg Opus file of the track's own
// packets, not re-encoded.
func SpeechAudio(meetingID, trackID string, startMS int64) string {
	return fmt.Sprintf("meetings/%s/speech/%s/%012d.ogg", meetingID, trackID, startMS)
}

// Minutes is one version of a meeting's minutes, as JSON.
func Minutes(meetingID string, version int) string {
	return fmt.Sprintf("meetings/%s/minutes/v%d.json", meetingID, version)
}

// MeetingPrefix holds every object of one meeting.
func MeetingPrefix(meetingID string) string {
	return fmt.Sprintf("meetings/%s/", meetingID)
}

// TrackChunk is checkpoint n of a track still being recorded: a standalone
// WebM of the audio spooled since checkpoint n-1. Chunks exist only while
// the track is open (or was cut off by a lost disk) and are deleted once
// the whole track is stored under Track.
func TrackChunk(meetingID, trackID string, n int) string {
	return fmt.Sprintf("meetings/%s/tracks/%s/chunks/%06d.webm", meetingID, trackID, n)
}

// TrackChunks holds every chunk of one track.
func TrackChunks(meetingID, trackID string) string {
	return fmt.Sprintf("meetings/%s/tracks/%s/chunks/", meetingID, trackID)
}

// RecordingJournal lists a checkpointed track's confirmed chunks. It sits
// outside the meeting's tree so that start-up recovery finds every track
// cut off by a lost disk by listing RecordingJournals alone.
func RecordingJournal(meetingID, trackID string) string {
	return fmt.Sprintf("recordings/%s/%s.json", meetingID, trackID)
}

// RecordingJournals holds every RecordingJournal.
const RecordingJournals = "recordings/"

// ArchiveWebM is a meeting's whole-meeting file: every speaker as an Opus
// track of one WebM, aligned on the meeting clock.
func ArchiveWebM(meetingID string) string {
	return fmt.Sprintf("meetings/%s/archive/meeting.webm", meetingID)
}

// ArchiveMix is a meeting's mixed-down audio, lossless after decoding (FLAC).
func ArchiveMix(meetingID string) string {
	return fmt.Sprintf("meetings/%s/archive/mix.flac", meetingID)
}

// SpeakerAudio is one speaker's audio on the meeting's timing (FLAC, as
// long as the meeting). A speaker is named by the id of their first stored
// track (the earliest on the meeting clock, then the smallest id), since
// identities are user text.
func SpeakerAudio(meetingID, firstTrackID string) string {
	return fmt.Sprintf("meetings/%s/archive/speakers/%s.flac", meetingID, firstTrackID)
}

// ImportUpload is the i-th uploaded file of an import, copied to storage
// while it waits for its job when several nodes share the work: the node
// that received it may not be the one that runs the import.
func ImportUpload(meetingID string, i int) string {
	return fmt.Sprintf("meetings/%s/imports/%d", meetingID, i)
}

// MinutesPrefix holds every minutes version of one meeting.
func MinutesPrefix(meetingID string) string {
	return fmt.Sprintf("meetings/%s/minutes/", meetingID)
}

// RecordingPrefixes hold a meeting's audio: its tracks (and their
// checkpoints), the speech cut from them, its whole-meeting files, and the
// checkpoint journals kept outside the meeting's tree. What is left under
// MeetingPrefix once they are gone is the minutes.
func RecordingPrefixes(meetingID string) []string {
	return []string{
		fmt.Sprintf("meetings/%s/tracks/", meetingID),
		fmt.Sprintf("meetings/%s/speech/", meetingID),
		fmt.Sprintf("meetings/%s/archive/", meetingID),
		fmt.Sprintf("meetings/%s/imports/", meetingID),
		fmt.Sprintf("recordings/%s/", meetingID),
	}
}
