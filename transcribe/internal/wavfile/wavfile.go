// Package wavfile writes the one WAV layout the speech backends are sent:
// a canonical 44-byte header, 16-bit mono PCM. It is shared by the
// transcribe package and its test doubles, which import no other Greffier
// package.
package wavfile

import "encoding/binary"

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
