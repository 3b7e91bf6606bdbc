// Package layout builds every object key Greffier stores, from ids Greffier
// generated (never from user text), so disk and S3 hold the same tree.
package layout

import "fmt"

// Track is a recorded track segment: one WebM per participant track.
func Track(meetingID, trackID string) string {
	return fmt.Sprintf("meetings/%s/tracks/%s.webm", meetingID, trackID)
}

// SpeechAudio is the audio of one speech segment, cut from its track and
// sent to the transcription backend (16 kHz mono WAV).
func SpeechAudio(meetingID, trackID string, startMS int64) string {
	return fmt.Sprintf("meetings/%s/speech/%s/%012d.wav", meetingID, trackID, startMS)
}

// Minutes is one version of a meeting's minutes, as JSON.
func Minutes(meetingID string, version int) string {
	return fmt.Sprintf("meetings/%s/minutes/v%d.json", meetingID, version)
}

// MeetingPrefix holds every object of one meeting.
func MeetingPrefix(meetingID string) string {
	return fmt.Sprintf("meetings/%s/", meetingID)
}
