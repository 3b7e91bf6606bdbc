package archive

import "github.com/greffier/greffier/internal/audio"

// opusSamples returns how many 48 kHz samples the Opus packet p decodes
// to, from its TOC byte, or 0 if p cannot be a valid packet. The muxer
// needs it to know where a track's last block ends, the mixer to give a
// rejected packet its length in silence.
func opusSamples(p []byte) int {
	n, _ := audio.PacketSamples48(p)
	return n
}

// maxPacketSamples48 is 120 ms at 48 kHz, the longest Opus packet.
const maxPacketSamples48 = audio.MaxPacketSamples48
