package transcribe

import (
	"fmt"
	"time"

	"github.com/greffier/greffier/internal/audio"
)

// Request.Audio comes in two formats, told apart by their first bytes: a
// 16 kHz mono PCM16 WAV ("RIFF....WAVE") or an Ogg Opus file ("OggS").
// Each backend sends what its server reads, decoding Ogg Opus here when
// the server reads nothing else.

// audioFormat is what a Request's Audio holds.
type audioFormat int

const (
	formatUnknown audioFormat = iota
	formatWAV
	formatOggOpus
)

func detectFormat(b []byte) audioFormat {
	switch {
	case len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WAVE":
		return formatWAV
	case audio.IsOgg(b):
		return formatOggOpus
	}
	return formatUnknown
}

// errUnknownFormat says what the audio should have been.
func errUnknownFormat(b []byte) error {
	return fmt.Errorf("audio is neither a WAV nor an Ogg Opus file (it starts with %.4q)", b)
}

// audioDuration reads the audio's length from the file: a WAV's header,
// or an Ogg Opus file's granule positions.
func audioDuration(b []byte) (time.Duration, error) {
	switch detectFormat(b) {
	case formatWAV:
		return audio.WAVDuration(b)
	case formatOggOpus:
		d, err := audio.OggOpusDuration(b)
		if err != nil {
			return 0, fmt.Errorf("audio starts with OggS but is %w", err)
		}
		return d, nil
	}
	return 0, errUnknownFormat(b)
}

// audioAsWAV returns the audio as a 16 kHz mono PCM16 WAV: a WAV as it
// is, Ogg Opus decoded.
func audioAsWAV(b []byte) ([]byte, error) {
	switch detectFormat(b) {
	case formatWAV:
		return b, nil
	case formatOggOpus:
		pcm, err := audio.DecodeOggOpusInt16(b, inputRate)
		if err != nil {
			return nil, fmt.Errorf("audio starts with OggS but is %w", err)
		}
		return audio.EncodeWAV(pcm, inputRate), nil
	}
	return nil, errUnknownFormat(b)
}

// wavSize is the size of the WAV audioAsWAV makes of audio of length d.
func wavSize(d time.Duration) int64 {
	return audio.WAVHeaderLen + 2*int64(d)*inputRate/int64(time.Second)
}

// decodePCM16WAV reads a 16 kHz PCM16 WAV file's first channel.
func decodePCM16WAV(b []byte) ([]int16, error) {
	pcm, rate, err := audio.DecodeWAV(b)
	if err != nil {
		return nil, err
	}
	if rate != inputRate {
		return nil, fmt.Errorf("WAV is at %d Hz; want %d Hz", rate, inputRate)
	}
	return pcm, nil
}
