package recorder

import (
	"math"

	"github.com/pion/rtp"
)

const (
	// windowSize is how many packets the reorder window holds (a power of
	// two). 8 Opus packets are 160 ms: enough for the reordering a
	// single-path UDP stream sees, small enough to hold per track.
	windowSize = 8
	// queueSize is how many in-order packets may wait for the spool
	// goroutine (a power of two): 256 packets are 5 s of 20 ms audio, room
	// for the burst that follows a network freeze. A disk that stalls
	// longer costs recorded audio, never the SFU's read loop. The queue
	// and its entries' buffers grow only when a backlog first reaches
	// them, and the queue restarts at entry 0 whenever it empties, so a
	// track that never backs up holds a handful of entries, not 256.
	queueSize = 256
	// entryCap is the payload capacity each entry starts with: typical
	// WebRTC Opus packets are 60-250 bytes; a larger one grows its entry
	// once and the entry keeps it.
	entryCap = 256
	// maxPayload bounds a payload the recorder accepts: nothing larger
	// fits in one UDP datagram on a normal path.
	maxPayload = 1500
	// resyncAfter is how many consecutive, mutually consistent packets
	// with an impossible timestamp it takes to believe the sender really
	// restarted its timeline (one bad packet never moves it).
	resyncAfter = 3
)

// Stats counts what a Writer did with the packets it was given.
type Stats struct {
	Written      int64 // packets handed to the WebM spool
	Late         int64 // arrived after their place was written (beyond the window)
	Duplicate    int64 // same sequence number seen twice
	Garbage      int64 // empty, oversized, not Opus, or another payload type
	BadTimestamp int64 // timestamp impossible given wall-clock time, or not increasing
	Overflow     int64 // spool goroutine too far behind: dropped, not blocked
	Resyncs      int64 // sender timeline restarts accepted
	// Lost counts sequence numbers skipped between released packets: sent
	// but never received in time (network loss, or later than the window).
	Lost int64
}

// entry holds one packet's payload in a buffer owned by the sequencer.
type entry struct {
	buf     []byte
	level   int16 // RFC 6464 level, 0 (loudest) to 127; -1 when the packet has none
	seq     int64 // extended sequence number
	ts      int64 // media time in clock ticks since the track's first packet
	samples int32 // duration at 48 kHz
	present bool
	// lost is, on a queued packet, how much audio (clock ticks) was lost
	// right before it: the packets missing between it and the packet
	// released before it, and those dropped because the spool fell
	// behind, which dropped says.
	lost    int64
	dropped int64
}

// sequencer turns packets in arrival order into packets in media order
// with 64-bit media times. It does no I/O and is guarded by Writer.mu.
//
// Time rule: a packet's media time is its unwrapped RTP timestamp relative
// to the first packet, so DTX silence and loss keep their place. A packet
// whose timestamp moves further ahead than the wall clock moved since the
// newest accepted packet, plus slack, or lies more than slack behind it,
// cannot be live audio: it is dropped as a bad timestamp. Only when
// resyncAfter consecutive such packets agree with each other is it taken
// as a sender restart, and the new timeline continues where the wall clock
// says, so one corrupt packet never opens a multi-hour gap.
type sequencer struct {
	levelID uint8 // the RFC 6464 header extension's id; 0 when not negotiated
	rate    int64 // ticks per second
	slack   int64 // ticks
	started bool
	pt      uint8

	highSeq int64 // unwrap reference for sequence numbers
	next    int64 // lowest sequence number not yet released

	highRaw     int64 // unwrapped raw timestamp of the newest accepted packet
	offset      int64 // media = raw + offset
	highTS      int64 // media time of the newest accepted packet
	highArrival int64 // its arrival, unix ns
	// firstArrival is when the packet at media time 0 arrived, unix ns.
	firstArrival int64

	suspectTS      uint32
	suspectArrival int64
	suspectN       int

	released bool  // something was released; lastTS is meaningful
	lastTS   int64 // media time of the last released packet

	// The packet that last left the window (queued or dropped), which
	// the next one's sequence number is compared with to see loss; none
	// at the start and after a sender restart (its numbers are new).
	haveRef bool
	refSeq  int64
	refEnd  int64 // media time where it ends
	// lostBefore is audio (ticks) lost since the last queued packet, and
	// droppedBefore the part of it this side dropped; the next queued
	// packet carries both.
	lostBefore, droppedBefore int64

	window [windowSize]entry
	// releasedSeq[i] is the last sequence number released from window
	// entry i, so a copy arriving after its original tells as a duplicate.
	releasedSeq [windowSize]int64
	// queue grows, by doubling, up to queueSize entries: the spool
	// goroutine drains it every drainEvery, so a track that never backs
	// up holds a few entries' worth, not 256.
	queue []entry
	qHead int // index of the oldest queued packet
	qLen  int

	stats Stats
}

// newSequencer returns a sequencer for a clock of clockRate Hz; pt is the
// payload type to record, or 0 to take the first valid packet's.
func newSequencer(clockRate uint32, pt uint8, slackTicks int64) *sequencer {
	s := &sequencer{rate: int64(clockRate), slack: slackTicks, pt: pt}
	for i := range s.releasedSeq {
		s.releasedSeq[i] = math.MinInt64
	}
	for i := range s.window {
		s.window[i].buf = make([]byte, 0, entryCap)
	}
	return s
}

// push accepts one packet that arrived at now (unix ns). It copies what it
// keeps and allocates nothing once entries have grown to the stream's sizes.
func (s *sequencer) push(p *rtp.Packet, now int64) {
	samples := opusSamples(p.Payload)
	if samples == 0 || len(p.Payload) > maxPayload || (s.pt != 0 && p.PayloadType != s.pt) {
		s.stats.Garbage++
		return
	}
	if !s.started {
		s.started = true
		s.pt = p.PayloadType
		s.highSeq = int64(p.SequenceNumber)
		// Leave room in the window for packets sent before this one that
		// arrive after it: the start waits a few packets, nothing is lost.
		s.next = s.highSeq - windowSize/2
		s.highRaw = int64(p.Timestamp)
		s.offset = -s.highRaw
		s.highArrival = now
		s.firstArrival = now
	}

	raw := s.highRaw + int64(int32(p.Timestamp-uint32(s.highRaw)))
	media := raw + s.offset
	delta := media - s.highTS
	elapsed := (now - s.highArrival) * s.rate / 1e9
	if elapsed < 0 {
		elapsed = 0
	}
	resync := false
	if delta > elapsed+s.slack || delta < -s.slack {
		if !s.consistentSuspect(p.Timestamp, now) {
			s.suspectN = 0
		}
		s.suspectN++
		s.suspectTS, s.suspectArrival = p.Timestamp, now
		if s.suspectN < resyncAfter {
			s.stats.BadTimestamp++
			return
		}
		// The sender restarted its clock: continue its new timeline where
		// the wall clock says this packet belongs.
		s.stats.Resyncs++
		raw = int64(p.Timestamp)
		s.offset = s.highTS + elapsed - raw
		media = raw + s.offset
		resync = true
	}
	s.suspectN = 0
	newest := media > s.highTS
	if newest || resync {
		s.highRaw, s.highTS, s.highArrival = raw, media, now
	}

	seq := s.highSeq + int64(int16(p.SequenceNumber-uint16(s.highSeq)))
	if resync || (seq < s.next && newest) {
		// A sequence discontinuity that carries newer audio is a sender
		// restart, not a late packet: release what is held and restart
		// the window here.
		s.releaseAll()
		s.next = seq
		s.highSeq = seq
		s.haveRef = false
	}
	if seq < s.next {
		if s.releasedSeq[seq&(windowSize-1)] == seq {
			s.stats.Duplicate++
		} else {
			s.stats.Late++
		}
		return
	}
	if seq >= s.next+windowSize {
		// Make room: whatever is missing below the new window is lost.
		for i := 0; i < windowSize && s.next <= seq-windowSize; i++ {
			s.releaseEntry(&s.window[s.next&(windowSize-1)])
			s.next++
		}
		if s.next <= seq-windowSize {
			s.next = seq - windowSize + 1
		}
	}
	if seq > s.highSeq {
		s.highSeq = seq
	}
	e := &s.window[seq&(windowSize-1)]
	if e.present {
		s.stats.Duplicate++
		return
	}
	e.present, e.seq, e.ts, e.samples = true, seq, media, int32(samples)
	e.level = -1
	if s.levelID != 0 {
		if ext := p.GetExtension(s.levelID); len(ext) > 0 {
			e.level = int16(ext[0] & 0x7f)
		}
	}
	e.buf = append(e.buf[:0], p.Payload...)
	for {
		head := &s.window[s.next&(windowSize-1)]
		if !head.present || head.seq != s.next {
			break
		}
		s.releaseEntry(head)
		s.next++
	}
}

// mediaOf is the media time of RTP timestamp ts on the current timeline;
// s must have started.
func (s *sequencer) mediaOf(ts uint32) int64 {
	return s.highRaw + int64(int32(ts-uint32(s.highRaw))) + s.offset
}

// consistentSuspect reports whether a packet with timestamp ts arriving at
// now continues the previous suspect packet's timeline.
func (s *sequencer) consistentSuspect(ts uint32, now int64) bool {
	if s.suspectN == 0 {
		return false
	}
	d := int64(int32(ts - s.suspectTS))
	e := (now - s.suspectArrival) * s.rate / 1e9
	return d > 0 && d <= e+s.slack
}

// releaseAll moves every held packet to the queue in sequence order.
func (s *sequencer) releaseAll() {
	for i := 0; i < windowSize; i++ {
		s.releaseEntry(&s.window[(s.next+int64(i))&(windowSize-1)])
	}
	s.next += windowSize
}

// releaseEntry moves e's packet, if any, to the queue by swapping buffers,
// so nothing is copied or allocated.
func (s *sequencer) releaseEntry(e *entry) {
	if !e.present {
		return
	}
	e.present = false
	s.releasedSeq[e.seq&(windowSize-1)] = e.seq
	if s.haveRef && e.seq > s.refSeq+1 {
		// Loss is skipped sequence numbers; DTX silence skips none. Each
		// lost packet is taken to be as long as this one, and the loss
		// can be no longer than the time it left empty: a jump in the
		// numbering alone loses nothing.
		missing := e.seq - s.refSeq - 1
		s.stats.Lost += missing
		dur := int64(e.samples) * s.rate / 48000
		s.lostBefore += max(min(missing*dur, e.ts-s.refEnd), 0)
	}
	s.haveRef, s.refSeq, s.refEnd = true, e.seq, e.ts+int64(e.samples)*s.rate/48000
	if s.released && e.ts <= s.lastTS {
		s.stats.BadTimestamp++
		return
	}
	if s.qLen == len(s.queue) && len(s.queue) < queueSize {
		s.growQueue()
	}
	if s.qLen == len(s.queue) {
		// Dropped here, the packet is as lost to the recording as one
		// the network lost, and must be stated the same way.
		s.stats.Overflow++
		dur := int64(e.samples) * s.rate / 48000
		s.lostBefore += dur
		s.droppedBefore += dur
		return
	}
	q := &s.queue[(s.qHead+s.qLen)&(len(s.queue)-1)]
	q.present, q.seq, q.ts, q.samples, q.level = true, e.seq, e.ts, e.samples, e.level
	q.lost, s.lostBefore = s.lostBefore, 0
	q.dropped, s.droppedBefore = s.droppedBefore, 0
	q.buf, e.buf = e.buf, q.buf
	s.qLen++
	s.released = true
	s.lastTS = e.ts
}

// queueStart is the queue's first size (a power of two): 320 ms of 20 ms
// packets, three drains' worth.
const queueStart = 16

// growQueue doubles the queue, its packets moved in order to the front
// (their buffers with them).
func (s *sequencer) growQueue() {
	q := make([]entry, max(queueStart, 2*len(s.queue)))
	for i := range s.qLen {
		q[i] = s.queue[(s.qHead+i)&(len(s.queue)-1)]
	}
	s.queue, s.qHead = q, 0
}

// pop returns the oldest queued packet and frees its entry; the entry's
// contents stay valid only while Writer.mu is held.
func (s *sequencer) pop() (*entry, bool) {
	if s.qLen == 0 {
		return nil, false
	}
	q := &s.queue[s.qHead]
	s.qHead = (s.qHead + 1) & (len(s.queue) - 1)
	s.qLen--
	if s.qLen == 0 {
		s.qHead = 0 // keep reusing the first entries' buffers
	}
	q.present = false
	s.stats.Written++
	return q, true
}
