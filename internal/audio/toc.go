package audio

import "errors"

// Why PacketSamples48 and CheckPacket refuse a packet. They are fixed
// values, not formatted, so that refusing a flood of garbage from the
// network allocates nothing.
var (
	errNoTOC         = errors.New("opus packet too short for its table of contents")
	errPacketFrames  = errors.New("opus packet of no frames or more than 120 ms")
	errPacketFraming = errors.New("opus packet shorter than the framing its table of contents announces")
)

// MaxPacketSamples48 is 120 ms at 48 kHz, the longest Opus packet
// (RFC 6716 section 3.2.5).
const MaxPacketSamples48 = 5760

// frameSamples48 is the frame length, at 48 kHz, of each Opus configuration
// (RFC 6716 section 3.1, table 2): SILK 10/20/40/60 ms, Hybrid 10/20 ms,
// CELT 2.5/5/10/20 ms.
var frameSamples48 = [32]int{
	480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880,
	480, 960, 480, 960,
	120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,
}

// PacketSamples48 reads an Opus packet's duration, at 48 kHz, from its TOC
// byte alone (and the frame count of a code 3 packet). A packet the
// decoder rejects still occupied this much time, and that time must
// become silence rather than vanish. It allocates nothing.
func PacketSamples48(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, errNoTOC
	}
	per := frameSamples48[p[0]>>3]
	switch p[0] & 3 {
	case 0:
		return per, nil
	case 1, 2:
		return 2 * per, nil
	default:
		if len(p) < 2 {
			return 0, errNoTOC
		}
		n := int(p[1] & 0x3f)
		// RFC 6716 caps a packet at 120 ms; more is not a packet we can trust.
		if n == 0 || n*per > MaxPacketSamples48 {
			return 0, errPacketFrames
		}
		return n * per, nil
	}
}

// CheckPacket is PacketSamples48 for packets straight from the network:
// it also refuses a packet shorter than the framing its TOC announces (two
// frames of equal size need an even length after the TOC; a code 2 packet
// needs its first frame's length). It is the recorder's only check of a
// payload: cheap, allocation-free, and enough to reject empty and
// truncated garbage and to know where the last block ends.
func CheckPacket(p []byte) (int, error) {
	n, err := PacketSamples48(p)
	if err != nil {
		return 0, err
	}
	switch p[0] & 3 {
	case 1: // two frames of equal size
		if (len(p)-1)%2 != 0 {
			return 0, errPacketFraming
		}
	case 2: // two frames, the first's length coded
		if len(p) < 2 {
			return 0, errPacketFraming
		}
	}
	return n, nil
}

// celtSilence reports whether p is a one-frame CELT-only packet whose
// silence flag is set: the encoder saw digital silence (a muted
// microphone) and the frame carries nothing else. The flag is the first
// symbol of the frame's range-coded data (RFC 6716 section 4.3, table 56,
// probability 1/32768), so deciding it takes one byte or two of the
// range decoder's start-up, not a decode.
func celtSilence(p []byte) bool {
	if len(p) < 1 || p[0]>>3 < 16 || p[0]&3 != 0 {
		return false // not CELT-only, or several frames
	}
	data := p[1:]
	if len(data) == 0 {
		return false // no frame at all: loss concealment, not silence
	}
	// The range decoder's initialisation (RFC 6716 section 4.1.1) and
	// normalisation to rng > 2^23, reading zeros past the end.
	byteAt := func(i int) uint32 {
		if i < len(data) {
			return uint32(data[i])
		}
		return 0
	}
	rng := uint32(128)
	rem := byteAt(0)
	val := 127 - rem>>1
	for i := 1; rng <= 1<<23; i++ {
		rng <<= 8
		sym := rem
		rem = byteAt(i)
		sym = (sym<<8 | rem) >> 1
		val = (val<<8 + (255 &^ sym)) & (1<<31 - 1)
	}
	// ec_dec_bit_logp(15): the symbol is 1 when val falls in the bottom
	// 1/32768 of the range.
	return val < rng>>15
}
