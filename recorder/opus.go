package recorder

import "github.com/greffier/greffier/internal/audio"

// opusCodecDelay is the pre-skip the recorder writes (libopus's, see
// audio.LibopusPreSkip) in nanoseconds, as Matroska wants it.
const opusCodecDelay = audio.LibopusPreSkip * 1_000_000_000 / 48000

// opusSamples returns how many 48 kHz samples the Opus packet p decodes to,
// or 0 if p cannot be a valid packet (audio.CheckPacket): the recorder's
// only check of a payload.
func opusSamples(p []byte) int {
	n, _ := audio.CheckPacket(p)
	return n
}
