package transcribetest

import (
	"errors"
	"fmt"

	"github.com/greffier/greffier/internal/audio"
)

// EncodeWAV wraps mono PCM16 samples in a canonical 44-byte-header WAV file.
func EncodeWAV(samples []int16, sampleRate int) []byte {
	return audio.EncodeWAV(samples, sampleRate)
}

// errNotWAV is what the double answers 415 for.
var errNotWAV = errors.New("not a PCM16 WAV file")

// OggOpusRate is the rate DecodeAudio decodes Ogg Opus to: what the tone
// speech Detector and whisper models work at.
const OggOpusRate = 16000

// DecodeAudio reads the audio files real servers read: a PCM16 WAV (as
// DecodeWAV does) or an Ogg Opus file, decoded at OggOpusRate to mono
// with its pre-skip dropped (as opusdec and ffmpeg do). It returns the
// samples and their rate.
func DecodeAudio(b []byte) ([]int16, int, error) {
	if !audio.IsOgg(b) {
		return DecodeWAV(b)
	}
	pcm, err := audio.DecodeOggOpusInt16(b, OggOpusRate)
	if err != nil {
		return nil, 0, err
	}
	return pcm, OggOpusRate, nil
}

// DecodeWAV reads a PCM16 WAV file (plain or WAVE_FORMAT_EXTENSIBLE, as
// opusdec and ffmpeg write) and returns its first channel and sample rate.
func DecodeWAV(b []byte) ([]int16, int, error) {
	pcm, rate, err := audio.DecodeWAV(b)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errNotWAV, err)
	}
	return pcm, rate, nil
}
