// Package wavfile writes the one WAV layout the speech backends are sent
// (a canonical 44-byte header, 16-bit mono PCM) and reads the PCM16 WAV
// files tools write. It is shared by the
// transcribe package and its test doubles, which import no other Greffier
// package.
package wavfile

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// HeaderLen is the size of the header Encode writes.
const HeaderLen = 44

// Encode wraps mono PCM16 samples at rate Hz in a WAV file.
func Encode(pcm []int16, rate int) []byte {
	data := 2 * len(pcm)
	b := make([]byte, HeaderLen+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(2*rate))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	for i, s := range pcm {
		binary.LittleEndian.PutUint16(b[HeaderLen+2*i:], uint16(s))
	}
	return b
}

// Decode reads a PCM16 WAV file (plain or WAVE_FORMAT_EXTENSIBLE, as
// opusdec and ffmpeg write) and returns its first channel and sample rate.
// Streaming writers leave the data size at 0 or 0xFFFFFFFF: what is there
// is taken.
func Decode(b []byte) (pcm []int16, rate int, err error) {
	if len(b) < 12 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, errors.New("not a WAV file: no RIFF/WAVE header")
	}
	channels := 0
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:]))
		body := b[p+8:]
		switch id {
		case "fmt ":
			if size < 16 || len(body) < 16 {
				return nil, 0, errors.New("WAV fmt chunk is short")
			}
			format := binary.LittleEndian.Uint16(body[0:])
			if format == 0xFFFE && size >= 40 && len(body) >= 40 {
				format = binary.LittleEndian.Uint16(body[24:]) // the sub-format GUID's first two bytes
			}
			channels = int(binary.LittleEndian.Uint16(body[2:]))
			rate = int(binary.LittleEndian.Uint32(body[4:]))
			bits := binary.LittleEndian.Uint16(body[14:])
			if format != 1 || bits != 16 || channels < 1 || rate <= 0 {
				return nil, 0, fmt.Errorf("WAV is format %d, %d bits, %d channels at %d Hz; want PCM16", format, bits, channels, rate)
			}
		case "data":
			if channels == 0 {
				return nil, 0, errors.New("WAV has no fmt chunk before its data")
			}
			if size == 0 || size > len(body) {
				size = len(body)
			}
			pcm = make([]int16, size/(2*channels))
			for i := range pcm {
				pcm[i] = int16(binary.LittleEndian.Uint16(body[2*channels*i:]))
			}
			return pcm, rate, nil
		}
		p += 8 + size + size%2
	}
	return nil, 0, errors.New("WAV has no data chunk")
}
