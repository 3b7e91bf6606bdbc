package jobs

import (
	"bytes"
	"fmt"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/audio"
)

// cutter finds speech in one track's packets by their audio levels and cuts
// each segment's audio out of the packets themselves, as an Ogg Opus file:
// nothing is decoded or re-encoded, except to measure the level of a packet
// that carries none. The live path feeds it the packets as they are
// recorded, with the levels their senders measured (RFC 6464); the batch
// path feeds it the stored packets and measures them. Not safe for
// concurrent use.
type cutter struct {
	seg      *diarize.Segmenter
	channels int
	leveler  *audio.PacketLeveler // made at the first packet without a level
	next     int64                // index of the next 20 ms frame to judge
	ring     [ringSize]timedPacket
	head, n  int // the oldest packet and how many are kept
	scratch  []audio.TimedPacket
}

// ringSize packets are kept for the segments still open: 41 s of 10 ms
// packets, more than a segment (30 s), the pause joined to it and the
// detector's lookahead. Each slot's buffer is reused, so keeping a packet
// allocates nothing once the ring has gone round.
const ringSize = 4096

type timedPacket struct {
	ms   int64
	data []byte
}

// cut is a segment found and its audio.
type cut struct {
	speech diarize.Speech
	ogg    []byte
}

func newCutter(channels int) *cutter {
	return &cutter{seg: diarize.NewSegmenter(voiceActivity), channels: channels}
}

// packet takes the next packet, at ms on the track's clock, with its RFC
// 6464 level or -1, and returns the segments that closed.
func (c *cutter) packet(ms int64, data []byte, level int) ([]cut, error) {
	if level < 0 {
		if c.leveler == nil {
			l, err := audio.NewPacketLeveler()
			if err != nil {
				return nil, err
			}
			c.leveler = l
		}
		var err error
		if level, err = c.leveler.Level(data); err != nil {
			return nil, err
		}
	}
	c.keep(ms, data)
	frame := (ms + frameMS/2) / frameMS
	if frame < c.next {
		return nil, nil // a packet shorter than a frame: its frame was judged
	}
	var speech []diarize.Speech
	for ; c.next < frame; c.next++ { // a hole: DTX or loss
		speech = append(speech, c.seg.WriteLevel(-audio.SilenceLevel)...)
	}
	frames := int64(1)
	if s48, err := audio.PacketSamples48(data); err == nil && s48 >= 960 {
		frames = int64(s48 / 960)
	}
	for ; frames > 0; frames-- {
		speech = append(speech, c.seg.WriteLevel(-float64(level))...)
		c.next++
	}
	return c.cut(speech)
}

// flush ends the track and returns the last segments.
func (c *cutter) flush() ([]cut, error) {
	return c.cut(c.seg.Flush())
}

const frameMS = 20

func (c *cutter) keep(ms int64, data []byte) {
	i := (c.head + c.n) % ringSize
	if c.n == ringSize {
		c.head = (c.head + 1) % ringSize
	} else {
		c.n++
	}
	c.ring[i] = timedPacket{ms: ms, data: append(c.ring[i].data[:0], data...)}
}

// cut writes each segment's packets as Ogg Opus, starting OggPreSkip
// early so that the decoded audio starts where the segment's does.
func (c *cutter) cut(speech []diarize.Speech) ([]cut, error) {
	var out []cut
	for _, sp := range speech {
		from := sp.AudioStartMS - audio.OggPreSkip.Milliseconds()
		c.scratch = c.scratch[:0]
		for i := range c.n {
			p := &c.ring[(c.head+i)%ringSize]
			if p.ms >= from && p.ms < sp.AudioEndMS {
				c.scratch = append(c.scratch, audio.TimedPacket{MS: p.ms, Data: p.data})
			}
		}
		if len(c.scratch) == 0 {
			return out, fmt.Errorf("speech at %d ms: no packets kept for it", sp.StartMS)
		}
		var b bytes.Buffer
		if err := audio.WriteOggOpus(&b, c.channels, from, c.scratch); err != nil {
			return out, fmt.Errorf("speech at %d ms: %w", sp.StartMS, err)
		}
		out = append(out, cut{speech: sp, ogg: b.Bytes()})
	}
	return out, nil
}
