package diarize

// Speech is one segment of speech found in a track, with its audio.
type Speech struct {
	// StartMS and EndMS bound the voiced stretch, without padding, in
	// milliseconds from the start of the audio fed to the Segmenter.
	StartMS, EndMS int64
	// AudioStartMS is where PCM[0] sits: StartMS minus the padding,
	// clamped at 0, or StartMS itself when this segment continues one cut
	// at MaxSegment.
	AudioStartMS int64
	// PCM is the segment's audio, 16 kHz mono, padding included. It is
	// the caller's to keep.
	PCM []int16
}

// AudioEndMS is where the segment's audio ends.
func (s Speech) AudioEndMS() int64 {
	return s.AudioStartMS + int64(len(s.PCM))*1000/sampleRate
}
