package archive

// opusSamples returns how many 48 kHz samples the Opus packet p decodes
// to, from its TOC byte (RFC 6716 §3.1), or 0 if p cannot be a valid
// packet. The muxer needs it to know where a track's last block ends, the
// mixer to give a rejected packet its length in silence.
func opusSamples(p []byte) int {
	if len(p) == 0 {
		return 0
	}
	toc := p[0]
	cfg := toc >> 3
	var frame int
	switch {
	case cfg < 12: // SILK: 10, 20, 40, 60 ms
		frame = [4]int{480, 960, 1920, 2880}[cfg&3]
	case cfg < 16: // hybrid: 10, 20 ms
		frame = 480 << (cfg & 1)
	default: // CELT: 2.5, 5, 10, 20 ms
		frame = 120 << (cfg & 3)
	}
	frames := 1
	switch toc & 3 {
	case 1, 2:
		frames = 2
	case 3:
		if len(p) < 2 {
			return 0
		}
		frames = int(p[1] & 0x3f)
	}
	if n := frame * frames; n <= maxPacketSamples48 {
		return n
	}
	return 0 // more than 120 ms: not a valid packet
}

// maxPacketSamples48 is 120 ms at 48 kHz, the longest Opus packet.
const maxPacketSamples48 = 5760
