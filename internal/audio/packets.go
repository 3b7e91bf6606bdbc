package audio

import (
	"context"
	"time"
)

// PacketDecoder decodes one track's Opus packets as they are recorded,
// each placed by its block time, into the same 20 ms frames DecodeWebM
// yields for the finished file: fed the blocks the recorder writes, with the
// times it writes them at, it gives the same PCM. That is what lets speech
// be found while the meeting runs and still match a later batch re-run.
type PacketDecoder struct {
	d *trackDecoder
}

// NewPacketDecoder starts a track whose Opus CodecDelay (pre-skip) is
// codecDelay. fn gets each frame; it must not retain it.
func NewPacketDecoder(codecDelay time.Duration, fn func(frame []int16) error) (*PacketDecoder, error) {
	d, err := newTrackDecoder(context.Background(), fn)
	if err != nil {
		return nil, err
	}
	d.preSkip = nsToSamples(codecDelay.Nanoseconds())
	return &PacketDecoder{d: d}, nil
}

// Decode places one packet whose block starts at at on the track's clock
// (as written to the WebM, the pre-skip not yet removed).
func (p *PacketDecoder) Decode(at time.Duration, packet []byte) error {
	return p.d.packet(nsToSamples(at.Nanoseconds())-p.d.preSkip, false, packet, 0)
}

// Flush hands out the last, partial frame padded with silence.
func (p *PacketDecoder) Flush() error { return p.d.out.flush() }

// Stats says what was decoded so far.
func (p *PacketDecoder) Stats() Stats { return p.d.stats() }
