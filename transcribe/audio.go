package transcribe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/greffier/greffier/transcribe/internal/oggopus"
	"github.com/greffier/greffier/transcribe/internal/wavfile"
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
	case oggopus.IsOgg(b):
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
		return wavDuration(b)
	case formatOggOpus:
		d, err := oggopus.Duration(b)
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
		pcm, err := oggopus.DecodeInt16(b, inputRate)
		if err != nil {
			return nil, fmt.Errorf("audio starts with OggS but is %w", err)
		}
		return wavfile.Encode(pcm, inputRate), nil
	}
	return nil, errUnknownFormat(b)
}

// wavSize is the size of the WAV audioAsWAV makes of audio of length d.
func wavSize(d time.Duration) int64 {
	return wavfile.HeaderLen + 2*int64(d)*inputRate/int64(time.Second)
}

// wavDuration reads a PCM WAV header for the length of its data.
func wavDuration(b []byte) (time.Duration, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, errors.New("audio is not a WAV file")
	}
	var bytesPerSecond int64
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int64(binary.LittleEndian.Uint32(b[p+4:]))
		switch id {
		case "fmt ":
			if p+8+16 > len(b) {
				return 0, errors.New("WAV fmt chunk is short")
			}
			bytesPerSecond = int64(binary.LittleEndian.Uint32(b[p+8+8:]))
		case "data":
			if bytesPerSecond <= 0 {
				return 0, errors.New("WAV has no usable fmt chunk before its data")
			}
			if avail := int64(len(b) - p - 8); size == 0 || size > avail {
				size = avail
			}
			return time.Duration(size * int64(time.Second) / bytesPerSecond), nil
		}
		p += 8 + int(size) + int(size%2)
	}
	return 0, errors.New("WAV has no data chunk")
}

// decodePCM16WAV reads a 16 kHz PCM16 WAV file's first channel.
func decodePCM16WAV(b []byte) ([]int16, error) {
	pcm, rate, err := wavfile.Decode(b)
	if err != nil {
		return nil, err
	}
	if rate != inputRate {
		return nil, fmt.Errorf("WAV is at %d Hz; want %d Hz", rate, inputRate)
	}
	return pcm, nil
}
