package diarize

// Speech is one segment of speech found in a track, with its audio.
type Speech struct {
	// StartMS and EndMS bound the voiced stretch, without padding, in
	// milliseconds from the start of the audio fed to the VoiceDetector.
	StartMS, EndMS int64
	// AudioStartMS and AudioEndMS bound the segment's audio, padding
	// included: AudioStartMS is StartMS minus the padding, clamped at 0,
	// or StartMS itself when this segment continues one cut at
	// MaxSegment.
	AudioStartMS, AudioEndMS int64
	// PCM is that audio, 16 kHz mono, from Write; nil from WriteLevel. It
	// is the caller's to keep.
	PCM []int16
}
