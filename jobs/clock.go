package jobs

import "time"

// onMeetingClock places a time a backend reported (relative to the start of
// the audio it was sent) on the meeting clock, given where that audio
// starts. Every backend answer goes through here and nowhere else.
func onMeetingClock(audioStartMS int64, rel time.Duration) int64 {
	return audioStartMS + rel.Round(time.Millisecond).Milliseconds()
}
