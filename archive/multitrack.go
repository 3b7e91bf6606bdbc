package archive

import (
	"cmp"
	"container/heap"
	"context"
	"fmt"
	"io"
	"time"
)

// ctxCheckEvery is how many blocks pass between two looks at the context:
// often enough to stop within milliseconds, rare enough to cost nothing.
const ctxCheckEvery = 256

// blockTimeSlackMS is how far a segment's first block may start before the
// previous segment's audio ends and still count as following it: block
// times are rounded to 1 ms on both sides.
const blockTimeSlackMS = 2

// WriteMultitrack writes one WebM holding every speaker as their own Opus
// audio track, named by Name with language "und", in order of each
// Identity's first appearance in tracks. A speaker's segments are placed at
// their meeting-clock times (block time = StartMS + block time within the
// segment) and their packets copied, not re-encoded, so the file is as good
// as the recordings. It has Duration, Cues, a SeekHead and per-track
// DURATION tags, and starts at meeting time 0, so every track is aligned to
// the meeting clock.
//
// Inputs are read block by block, merged by time across inputs, and opened
// only when the merge reaches their StartMS (each speaker's first segment
// is opened at once: its Opus header becomes the output track's), so
// memory depends on how many segments overlap, never on their length. w
// must be seekable because sizes, Duration and positions are filled in at
// the end; it is left at the end of the file and not closed.
func WriteMultitrack(ctx context.Context, w io.WriteSeeker, tracks []Track) (Stats, error) {
	if err := validateTracks(tracks); err != nil {
		return Stats{}, err
	}
	mg := &merge{ctx: ctx, tracks: tracks}
	defer mg.closeAll()
	st, err := mg.run(w)
	if err != nil {
		return st, fmt.Errorf("write multitrack webm: %w", err)
	}
	return st, nil
}

// cursor is one open input and its current block.
type cursor struct {
	r       *segmentReader
	out     int   // output track, 0-based
	startMS int64 // the segment's place on the meeting clock
	shiftNS int64 // CodecDelay difference to the output track's
	ms      int64 // the current block's time on the meeting clock
	seq     int   // order of opening, the last tie-break
	seg     int   // index into the caller's tracks
}

// advance moves to the next block; false when the input is used up.
func (c *cursor) advance() (bool, error) {
	ok, err := c.r.next()
	if !ok || err != nil {
		return false, err
	}
	c.ms = c.startMS + roundDiv(c.r.blk.timeNS+c.shiftNS, 1_000_000)
	return true, nil
}

// cursorHeap orders cursors by block time, then output track, then the
// order they were opened, so equal inputs always give the same file.
type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	if c := cmp.Compare(h[i].ms, h[j].ms); c != 0 {
		return c < 0
	}
	if h[i].out != h[j].out {
		return h[i].out < h[j].out
	}
	return h[i].seq < h[j].seq
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return c
}

// merge is one run of WriteMultitrack.
type merge struct {
	ctx    context.Context
	tracks []Track
	heap   cursorHeap
	opened []*segmentReader // every reader not yet closed
	mux    *muxer
	st     Stats
	seq    int
}

func (mg *merge) run(w io.WriteSeeker) (Stats, error) {
	speakers := groupSpeakers(mg.tracks)
	mg.st.Speakers = len(speakers)
	out := make([]muxTrack, len(speakers))
	var first []*cursor
	var pending []int
	for k, s := range speakers {
		seg := s.segments[0]
		r, err := mg.open(seg)
		if err != nil {
			return mg.st, err
		}
		out[k] = muxTrack{number: uint64(k + 1), name: s.name, opus: r.track, lastMS: -1, inCue: -1}
		first = append(first, mg.cursor(r, k, seg, r.track.codecDelayNS))
		pending = append(pending, s.segments[1:]...)
	}
	sortByStart(pending, mg.tracks)
	outOf := make(map[string]int, len(speakers))
	for k, s := range speakers {
		outOf[s.identity] = k
	}

	mg.mux = newMuxer(w, out)
	if err := mg.mux.start(); err != nil {
		return mg.st, err
	}
	for _, c := range first {
		if err := mg.push(c); err != nil {
			return mg.st, err
		}
	}
	for n := 0; ; n++ {
		// A later segment joins the merge once the merge reaches its start:
		// its blocks cannot come earlier.
		for len(pending) > 0 && (len(mg.heap) == 0 || mg.tracks[pending[0]].StartMS <= mg.heap[0].ms) {
			seg := pending[0]
			pending = pending[1:]
			r, err := mg.open(seg)
			if err != nil {
				return mg.st, err
			}
			k := outOf[mg.tracks[seg].Identity]
			if err := mg.push(mg.cursor(r, k, seg, out[k].opus.codecDelayNS)); err != nil {
				return mg.st, err
			}
		}
		if len(mg.heap) == 0 {
			break
		}
		if n%ctxCheckEvery == 0 {
			if err := mg.ctx.Err(); err != nil {
				return mg.st, err
			}
		}
		c := mg.heap[0]
		if err := mg.write(c); err != nil {
			return mg.st, err
		}
		ok, err := c.advance()
		if err != nil {
			return mg.st, mg.inputErr(c, err)
		}
		if ok {
			heap.Fix(&mg.heap, 0)
		} else {
			heap.Pop(&mg.heap)
			mg.done(c.r)
		}
	}
	if err := mg.mux.finish(); err != nil {
		return mg.st, err
	}
	mg.st.Duration = time.Duration(mg.mux.endMS) * time.Millisecond
	mg.st.Bytes = mg.mux.off
	return mg.st, nil
}

func (mg *merge) open(seg int) (*segmentReader, error) {
	r, err := openSegment(mg.ctx, mg.tracks[seg])
	if err != nil {
		return nil, err
	}
	mg.opened = append(mg.opened, r)
	mg.st.Segments++
	return r, nil
}

func (mg *merge) cursor(r *segmentReader, out, seg int, outDelayNS int64) *cursor {
	mg.seq++
	return &cursor{
		r:       r,
		out:     out,
		startMS: mg.tracks[seg].StartMS,
		// Players remove the output track's CodecDelay from every block; a
		// segment encoded with another delay is moved by the difference.
		shiftNS: outDelayNS - r.track.codecDelayNS,
		seq:     mg.seq,
		seg:     seg,
	}
}

// push reads a new cursor's first block and enters it into the merge.
func (mg *merge) push(c *cursor) error {
	ok, err := c.advance()
	if err != nil {
		return mg.inputErr(c, err)
	}
	if !ok {
		mg.done(c.r)
		return nil
	}
	heap.Push(&mg.heap, c)
	return nil
}

func (mg *merge) write(c *cursor) error {
	t := &mg.mux.tracks[c.out]
	blk := &c.r.blk
	// A block before what its track already holds (an overlapping segment
	// of the same speaker), before the meeting's start, or too far behind
	// the open cluster for a block's int16 time cannot be placed.
	// Another segment's block may not start before the audio already on
	// the track ends (less the rounding of block times to 1 ms).
	takeover := c.seq != t.lastSeq && c.ms < t.endMS-blockTimeSlackMS
	if takeover || c.ms < t.lastMS || c.ms < 0 || (mg.mux.open && c.ms < mg.mux.clusterMS-maxClusterMS) {
		mg.st.Overlapped += int64(packetCount(blk))
		return nil
	}
	mg.st.Packets += int64(packetCount(blk))
	t.lastSeq = c.seq
	return mg.mux.block(c.out, c.ms, blk)
}

func (mg *merge) inputErr(c *cursor, err error) error {
	return fmt.Errorf("read track of %s at %d ms: %w", mg.tracks[c.seg].Identity, c.startMS, err)
}

// done closes a used-up input.
func (mg *merge) done(r *segmentReader) {
	if r.truncated {
		mg.st.Truncated++
	}
	// A reader's Close reports nothing about data already read.
	_ = r.close()
}

func (mg *merge) closeAll() {
	for _, r := range mg.opened {
		_ = r.close()
	}
}

// packetCount is how many Opus packets a block holds.
func packetCount(b *block) int {
	if !b.laced() {
		return 1
	}
	if len(b.data()) == 0 {
		return 0
	}
	return int(b.data()[0]) + 1 // lace header: number of frames minus one
}

// roundDiv divides rounding to the nearest integer, halves away from zero.
func roundDiv(a, b int64) int64 {
	if a < 0 {
		return -((-a + b/2) / b)
	}
	return (a + b/2) / b
}
