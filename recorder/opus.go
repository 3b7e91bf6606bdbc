package recorder

import "encoding/binary"

// opusPreSkip is libopus's encoder look-ahead at 48 kHz (6.5 ms). The RTP
// stream does not carry the sender's pre-skip; this is what every libopus
// based WebRTC sender uses, and OpusHead and CodecDelay must agree on it.
const opusPreSkip = 312

// opusSeekPreRoll is the 80 ms the Matroska Opus mapping asks decoders to
// decode before a seek target so the output has converged.
const opusSeekPreRoll = 80_000_000 // ns

// opusCodecDelay is opusPreSkip expressed in nanoseconds, as Matroska wants.
const opusCodecDelay = opusPreSkip * 1_000_000_000 / 48000

// opusHead builds the 19-byte identification header (RFC 7845 §5.1) that
// Matroska stores as CodecPrivate: mapping family 0, no output gain.
func opusHead(channels uint8) []byte {
	h := make([]byte, 19)
	copy(h, "OpusHead")
	h[8] = 1 // version
	h[9] = channels
	binary.LittleEndian.PutUint16(h[10:], opusPreSkip)
	binary.LittleEndian.PutUint32(h[12:], 48000) // original input rate, informational
	// h[16:18] output gain 0, h[18] mapping family 0
	return h
}

// opusSamples returns how many 48 kHz samples the Opus packet p decodes to,
// from its TOC byte (RFC 6716 §3.1), or 0 if p cannot be a valid packet. It
// is the recorder's only check of the payload: cheap, allocation-free, and
// enough to reject empty and truncated garbage and to know where the last
// block ends.
func opusSamples(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	cfg := toc >> 3
	var frame int
	switch {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		switch cfg & 3 {
		case 0:
			frame = 480
		case 1:
			frame = 960
		case 2:
			frame = 1920
		default:
			frame = 2880
		}
	case cfg < 16: // hybrid: 10, 20 ms
		frame = 480
		if cfg&1 == 1 {
			frame = 960
		}
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = 120 << (cfg & 3)
	}
	var frames int
	switch toc & 3 {
	case 0:
		frames = 1
	case 1: // two frames of equal size
		if (len(p)-1)%2 != 0 {
			return 0
		}
		frames = 2
	case 2: // two frames, first length coded
		if len(p) < 2 {
			return 0
		}
		frames = 2
	default: // arbitrary count in the second byte
		if len(p) < 2 {
			return 0
		}
		frames = int(p[1] & 0x3f)
		if frames == 0 {
			return 0
		}
	}
	d := frames * frame
	if d > 5760 { // RFC 6716: a packet never exceeds 120 ms
		return 0
	}
	return d
}
