package transcribetest

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/greffier/greffier/transcribe/internal/oggopus"
	"github.com/greffier/greffier/transcribe/internal/wavfile"
)

// EncodeWAV wraps mono PCM16 samples in a canonical 44-byte-header WAV file.
func EncodeWAV(samples []int16, sampleRate int) []byte {
	return wavfile.Encode(samples, sampleRate)
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
	if !oggopus.IsOgg(b) {
		return DecodeWAV(b)
	}
	pcm, err := oggopus.DecodeInt16(b, OggOpusRate)
	if err != nil {
		return nil, 0, err
	}
	return pcm, OggOpusRate, nil
}

// DecodeWAV reads a PCM16 WAV file (plain or WAVE_FORMAT_EXTENSIBLE, as
// opusdec and ffmpeg write) and returns its first channel and sample rate.
func DecodeWAV(b []byte) ([]int16, int, error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, fmt.Errorf("%w: no RIFF/WAVE header", errNotWAV)
	}
	var (
		rate, channels int
		haveFmt        bool
	)
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:]))
		body := b[p+8:]
		switch id {
		case "fmt ":
			if size < 16 || len(body) < 16 {
				return nil, 0, fmt.Errorf("%w: short fmt chunk", errNotWAV)
			}
			format := binary.LittleEndian.Uint16(body[0:])
			if format == 0xFFFE && size >= 40 && len(body) >= 40 {
				format = binary.LittleEndian.Uint16(body[24:]) // sub-format GUID's first two bytes
			}
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
			bits := binary.LittleEndian.Uint16(body[14:])
			if format != 1 || bits != 16 || channels < 1 || rate <= 0 {
				return nil, 0, fmt.Errorf("%w: format %d, %d bits, %d channels, %d Hz", errNotWAV, format, bits, channels, rate)
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, 0, fmt.Errorf("%w: data before fmt", errNotWAV)
			}
			// Streaming writers leave the size at 0 or 0xFFFFFFFF: take what is there.
			if size > len(body) || size == 0 {
				size = len(body)
			}
			frames := size / (2 * channels)
			out := make([]int16, frames)
			for i := range out {
				out[i] = int16(binary.LittleEndian.Uint16(body[2*channels*i:]))
			}
			return out, rate, nil
		}
		p += 8 + size + size%2
	}
	return nil, 0, fmt.Errorf("%w: no data chunk", errNotWAV)
}
