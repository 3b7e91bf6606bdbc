package audio

import (
	"context"
	"math"
)

// SilenceLevel is the RFC 6464 level of silence: -127 dBov.
const SilenceLevel = 127

// Level is the RFC 6464 audio level of PCM: its RMS in -dBov, rounded, 0
// (full scale) to 127 (silence), as a WebRTC sender measures each packet
// it sends. Voice activity judged on levels then works the same whether a
// sender put them in its packets or they were measured here.
func Level(pcm []int16) int {
	var sum float64
	for _, s := range pcm {
		sum += float64(s) * float64(s)
	}
	if len(pcm) == 0 || sum == 0 {
		return SilenceLevel
	}
	ms := sum / float64(len(pcm)) / (32768.0 * 32768.0)
	return int(math.Max(0, math.Min(SilenceLevel, math.Round(-10*math.Log10(ms)))))
}

// PacketLeveler measures the level of one track's Opus packets, in order,
// for packets that carried none: it decodes them (skipping settled
// silence) and measures the PCM.
type PacketLeveler struct {
	d *trackDecoder
}

// NewPacketLeveler starts a track.
func NewPacketLeveler() (*PacketLeveler, error) {
	d, err := newTrackDecoder(context.Background(), nil)
	if err != nil {
		return nil, err
	}
	return &PacketLeveler{d: d}, nil
}

// Level decodes the next packet of the track and returns its level.
func (l *PacketLeveler) Level(packet []byte) (int, error) {
	pcm, err := l.d.decode(packet)
	if err != nil {
		return 0, err
	}
	return Level(pcm), nil
}
