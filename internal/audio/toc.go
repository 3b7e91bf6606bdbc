package audio

import "errors"

// errNoTOC marks a packet too short to say how long it is.
var errNoTOC = errors.New("opus packet too short for its table of contents")

// frameSamples48 is the frame length, at 48 kHz, of each Opus configuration
// (RFC 6716 section 3.1, table 2): SILK 10/20/40/60 ms, Hybrid 10/20 ms,
// CELT 2.5/5/10/20 ms.
var frameSamples48 = [32]int{
	480, 960, 1920, 2880, 480, 960, 1920, 2880, 480, 960, 1920, 2880,
	480, 960, 480, 960,
	120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960, 120, 240, 480, 960,
}

// packetSamples48 reads an Opus packet's duration, at 48 kHz, from its TOC
// byte alone. A packet the decoder rejects still occupied this much time,
// and that time must become silence rather than vanish.
func packetSamples48(p []byte) (int, error) {
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
		if n == 0 || n*per > 5760 {
			return 0, errNoTOC
		}
		return n * per, nil
	}
}
