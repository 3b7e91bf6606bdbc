package audio

import "encoding/binary"

// LibopusPreSkip is libopus's encoder look-ahead at 48 kHz (6.5 ms). The
// RTP stream does not carry the sender's pre-skip; this is what every
// libopus based WebRTC sender uses, and OpusHead and CodecDelay must
// agree on it.
const LibopusPreSkip = 312

// OpusSeekPreRoll is the 80 ms, in ns, the Matroska Opus mapping asks
// decoders to decode before a seek target so the output has converged.
const OpusSeekPreRoll = 80_000_000

// OpusHead builds the 19-byte identification header (RFC 7845 section
// 5.1) that Matroska stores as CodecPrivate and Ogg as its first packet:
// mapping family 0, no output gain, input rate 48 kHz (informational).
func OpusHead(channels uint8, preSkip uint16) []byte {
	h := make([]byte, 19)
	copy(h, "OpusHead")
	h[8] = 1 // version
	h[9] = channels
	binary.LittleEndian.PutUint16(h[10:], preSkip)
	binary.LittleEndian.PutUint32(h[12:], 48000)
	// h[16:18] output gain 0, h[18] mapping family 0
	return h
}
