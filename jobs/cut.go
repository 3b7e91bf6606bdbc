package jobs

import (
	"bytes"
	"fmt"
	"time"

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
	vad      *diarize.VoiceDetector
	channels int
	leveler  *audio.PacketLeveler // made at the first packet without a level
	next     int64                // index of the next 20 ms frame to judge
	ring     []timedPacket        // recent packets, oldest at head
	head, n  int                  // the oldest packet and how many are kept
	scratch  []audio.TimedPacket
	keepFor  int64 // ms
	big      int   // the largest packet kept: the size of a new slot's buffer
}

// keepFor is how far back a segment still open may reach: a whole segment
// (MaxSegment), the pause joined to it (2 s), the detector's lookahead
// (1 s), its padding and the Ogg pre-skip, with a margin. The ring keeps at
// least that, growing only while its oldest packet is that recent: 2,048
// entries for 20 ms packets and 30 s segments, a few dozen for a silent
// participant in DTX. Each entry's buffer is reused, so keeping a packet
// allocates nothing once the ring has gone round.
func keepFor(cfg diarize.VoiceDetectorConfig) int64 {
	cfg = cfg.WithDefaults()
	return (cfg.MaxSegment + max(cfg.JoinPause, cfg.Hangover) + 3*time.Second).Milliseconds()
}

type timedPacket struct {
	ms   int64
	data []byte
}

// cut is a segment found and its audio.
type cut struct {
	speech diarize.Speech
	ogg    []byte
}

func newCutter(cfg diarize.VoiceDetectorConfig, channels int) *cutter {
	return &cutter{vad: diarize.NewVoiceDetector(cfg), channels: channels, keepFor: keepFor(cfg)}
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
		speech = append(speech, c.vad.WriteLevel(-audio.SilenceLevel)...)
	}
	frames := int64(1)
	if s48, err := audio.PacketSamples48(data); err == nil && s48 >= 960 {
		frames = int64(s48 / 960)
	}
	for ; frames > 0; frames-- {
		speech = append(speech, c.vad.WriteLevel(-float64(level))...)
		c.next++
	}
	out, err := c.cut(speech)
	c.forget()
	return out, err
}

// forget drops the packets no segment still to come can start with: those
// before the detector's held audio, less the Ogg pre-skip and a frame.
// A silent participant's ring then holds a second or two of packets, not
// keepFor; a ring left mostly empty by a long segment shrinks back.
func (c *cutter) forget() {
	oldest := c.vad.HeldFromMS() - audio.OggPreSkip.Milliseconds() - 2*frameMS
	for c.n > 0 && c.ring[c.head].ms < oldest {
		c.head = (c.head + 1) % len(c.ring)
		c.n--
	}
	if len(c.ring) > minRing && c.n < len(c.ring)/4 {
		c.resize(max(minRing, len(c.ring)/2))
	}
}

// flush ends the track and returns the last segments.
func (c *cutter) flush() ([]cut, error) {
	return c.cut(c.vad.Flush())
}

const frameMS = 20

func (c *cutter) keep(ms int64, data []byte) {
	c.big = max(c.big, len(data))
	if c.n == len(c.ring) && (c.n == 0 || c.ring[c.head].ms >= ms-c.keepFor) {
		c.resize(max(minRing, 2*len(c.ring)))
	}
	i := (c.head + c.n) % len(c.ring)
	if c.n == len(c.ring) {
		c.head = (c.head + 1) % len(c.ring) // the oldest is older than keepFor
	} else {
		c.n++
	}
	c.ring[i] = timedPacket{ms: ms, data: append(c.ring[i].data[:0], data...)}
}

// minRing is the ring's smallest size: about two seconds of 20 ms
// packets, what a silent participant's ring holds.
const minRing = 96

// resize moves the ring's packets, oldest first, to a ring of n slots.
// Every slot has a buffer from the start, so that keeping a packet
// allocates nothing: the slots a growing ring adds get theirs from one
// slab (one allocation per doubling, not one per packet of a long
// segment), each as large as the largest packet kept so far; a shrinking
// ring copies the few packets it still keeps into a slab of its own, so
// that a long segment's buffers, now forgotten, are freed rather than
// held by the slots that survive.
func (c *cutter) resize(n int) {
	ring := make([]timedPacket, n)
	size := (max(c.big, 48) + 15) &^ 15
	if n > len(c.ring) {
		j := 0
		for i := range len(c.ring) { // kept packets first, then free buffers
			ring[j] = c.ring[(c.head+i)%len(c.ring)]
			if i >= c.n {
				ring[j].data = ring[j].data[:0]
			}
			j++
		}
		slab := make([]byte, (n-j)*size)
		for ; j < n; j++ {
			ring[j].data, slab = slab[:0:size], slab[size:]
		}
	} else {
		slab := make([]byte, n*size)
		for i := range n {
			var buf []byte
			buf, slab = slab[:0:size], slab[size:]
			if i < c.n {
				p := c.ring[(c.head+i)%len(c.ring)]
				ring[i] = timedPacket{ms: p.ms, data: append(buf, p.data...)}
			} else {
				ring[i].data = buf
			}
		}
	}
	c.ring, c.head = ring, 0
}

// cut writes each segment's packets as Ogg Opus, starting OggPreSkip
// early so that the decoded audio starts where the segment's does. Ogg
// counts time in whole packets, so the file starts on the packets' own
// 20 ms grid, at most a frame before the segment's audio would: the
// segment's AudioStartMS moves there, and every word keeps its time.
func (c *cutter) cut(speech []diarize.Speech) ([]cut, error) {
	var out []cut
	for _, sp := range speech {
		from := sp.AudioStartMS - audio.OggPreSkip.Milliseconds()
		c.scratch = c.scratch[:0]
		for i := range c.n {
			p := &c.ring[(c.head+i)%len(c.ring)]
			if p.ms > from-frameMS && p.ms < sp.AudioEndMS {
				c.scratch = append(c.scratch, audio.TimedPacket{MS: p.ms, Data: p.data})
			}
		}
		if len(c.scratch) == 0 {
			return out, fmt.Errorf("speech at %d ms: no packets kept for it", sp.StartMS)
		}
		start := c.scratch[0].MS
		if start > from { // a hole (DTX) before the first packet: silence frames on its grid
			start -= (start - from + frameMS - 1) / frameMS * frameMS
		}
		var b bytes.Buffer
		if err := audio.WriteOggOpus(&b, c.channels, start, c.scratch); err != nil {
			return out, fmt.Errorf("speech at %d ms: %w", sp.StartMS, err)
		}
		sp.AudioStartMS = start + audio.OggPreSkip.Milliseconds()
		out = append(out, cut{speech: sp, ogg: b.Bytes()})
	}
	return out, nil
}
