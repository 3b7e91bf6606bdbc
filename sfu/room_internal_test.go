package sfu

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// countWriter is a TrackLocalWriter that keeps the last header it got.
type countWriter struct {
	n    int
	last rtp.Header
	pay  int
}

func (w *countWriter) writeRTP(_ *sender, h *rtp.Header, payload []byte) error {
	w.n++
	w.last = *h
	w.pay = len(payload)
	return nil
}

func testRoom() *room {
	return newRoom("m", Config{}.WithDefaults(), slog.New(slog.DiscardHandler))
}

func speaker(r *room, identity string, seq uint64) *publishedTrack {
	t := &publishedTrack{room: r, identity: identity, seq: seq, log: slog.New(slog.DiscardHandler)}
	r.addTrack(t)
	return t
}

// speak makes t look like it has been talking at level (0 loud .. 127 silent).
func speak(t *publishedTrack, level byte, now time.Time) {
	for range 40 {
		t.observe(level, true, now)
	}
}

func listenerWith(r *room, identity string, slots int) *listener {
	l := &listener{identity: identity}
	for range slots {
		l.slots = append(l.slots, newSlotTrack("s", "m", nil))
	}
	r.addListener(l)
	return l
}

func holders(l *listener) []string {
	var out []string
	for _, s := range l.slots {
		if s.holder == nil {
			out = append(out, "")
		} else {
			out = append(out, s.holder.identity)
		}
	}
	return out
}

func TestSelectionLoudestNeverSelf(t *testing.T) {
	t.Parallel()
	r := testRoom()
	now := time.Now()
	a, b, c, d := speaker(r, "a", 1), speaker(r, "b", 2), speaker(r, "c", 3), speaker(r, "d", 4)
	speak(a, 10, now)
	speak(b, 30, now)
	speak(c, 50, now)
	speak(d, 70, now)
	la := listenerWith(r, "a", 2)
	lx := listenerWith(r, "x", 2)
	r.selectOnce(now)
	require.ElementsMatch(t, []string{"b", "c"}, holders(la), "a never hears a; the two loudest others")
	require.ElementsMatch(t, []string{"a", "b"}, holders(lx))
	require.Equal(t, []*slotTrack{la.slots[0]}, filter(*b.dests.Load(), la), "b feeds exactly the slot that holds it")
}

func filter(ss []*slotTrack, l *listener) []*slotTrack {
	var out []*slotTrack
	for _, s := range ss {
		for _, ls := range l.slots {
			if s == ls {
				out = append(out, s)
			}
		}
	}
	return out
}

func TestSelectionHysteresis(t *testing.T) {
	t.Parallel()
	r := testRoom()
	now := time.Now()
	a, b, c := speaker(r, "a", 1), speaker(r, "b", 2), speaker(r, "c", 3)
	speak(a, 20, now)
	speak(b, 30, now)
	l := listenerWith(r, "x", 2)
	r.selectOnce(now)
	require.ElementsMatch(t, []string{"a", "b"}, holders(l))

	// c gets slightly louder than b: within the margin, nothing moves.
	speak(c, 28, now)
	r.selectOnce(now.Add(2 * time.Second))
	require.ElementsMatch(t, []string{"a", "b"}, holders(l))

	// c gets much louder, but b has only just been (re)confirmed: the hold
	// time counts from when b took the slot, which is long past, so c wins
	// b's slot (the weakest), not a's.
	speak(c, 5, now)
	later := now.Add(2 * time.Second)
	speak(a, 20, later)
	speak(b, 30, later)
	speak(c, 5, later)
	r.selectOnce(later)
	require.ElementsMatch(t, []string{"a", "c"}, holders(l))

	// b is now much louder than a, but c took its slot just now and a's hold
	// has long expired: b takes a's slot; c keeps its own within the hold.
	speak(b, 0, later)
	speak(a, 40, later)
	r.selectOnce(later.Add(100 * time.Millisecond))
	require.ElementsMatch(t, []string{"b", "c"}, holders(l))
}

func TestSelectionSilentTrackFreesSlot(t *testing.T) {
	t.Parallel()
	r := testRoom()
	now := time.Now()
	a, b := speaker(r, "a", 1), speaker(r, "b", 2)
	speak(a, 60, now)
	l := listenerWith(r, "x", 1)
	r.selectOnce(now)
	require.Equal(t, []string{"a"}, holders(l))
	// a stops sending; quieter b still talks: after activeWindow b gets the slot.
	later := now.Add(activeWindow + time.Millisecond)
	speak(b, 90, later)
	r.selectOnce(later)
	require.Equal(t, []string{"b"}, holders(l))

	r.removeTrack(b)
	require.Equal(t, []string{""}, holders(l))
}

func TestSlotRewriteContinuesAcrossSwitch(t *testing.T) {
	t.Parallel()
	r := testRoom()
	a, b := speaker(r, "a", 1), speaker(r, "b", 2)
	s := newSlotTrack("s", "m", nil)
	w := &countWriter{}
	s.w, s.ssrc, s.pt, s.levelID = w, 777, 96, 3
	s.setSource(a)
	now := time.Now()
	pa := &rtp.Packet{Header: rtp.Header{SSRC: 1, SequenceNumber: 100, Timestamp: 1000}, Payload: []byte{1}}
	s.write(nil, a, pa, 20, true, now)
	require.Equal(t, uint32(777), w.last.SSRC)
	require.Equal(t, uint8(96), w.last.PayloadType)
	require.Equal(t, []byte{20}, w.last.GetExtension(3))
	first := w.last
	pa.SequenceNumber, pa.Timestamp = 101, 1960
	s.write(nil, a, pa, 20, true, now.Add(20*time.Millisecond))
	require.Equal(t, first.SequenceNumber+1, w.last.SequenceNumber)
	require.Equal(t, first.Timestamp+960, w.last.Timestamp)

	// b's packets are ignored until b holds the slot.
	pb := &rtp.Packet{Header: rtp.Header{SSRC: 2, SequenceNumber: 60000, Timestamp: 9_000_000}, Payload: []byte{2}}
	s.write(nil, b, pb, 10, false, now.Add(30*time.Millisecond))
	require.Equal(t, 2, w.n)

	s.setSource(b)
	s.write(nil, b, pb, 10, false, now.Add(120*time.Millisecond))
	require.Equal(t, 3, w.n)
	require.Equal(t, first.SequenceNumber+2, w.last.SequenceNumber, "sequence continues")
	require.Equal(t, first.Timestamp+960+100*48, w.last.Timestamp, "timestamp advances by wall time: the gap stays")
	require.True(t, w.last.Marker)
	require.Nil(t, w.last.GetExtension(3))
	pb.SequenceNumber, pb.Timestamp = 60001, 9_000_960
	s.write(nil, b, pb, 10, false, now.Add(140*time.Millisecond))
	require.Equal(t, first.SequenceNumber+3, w.last.SequenceNumber)
	require.Equal(t, first.Timestamp+960+100*48+960, w.last.Timestamp)
	// a no longer writes.
	s.write(nil, a, pa, 20, true, now.Add(150*time.Millisecond))
	require.Equal(t, 4, w.n)
}

// nopTap counts packets; it is the cheapest Tap possible.
type nopTap struct{ n int }

func (t *nopTap) WriteRTP(*rtp.Packet)        { t.n++ }
func (t *nopTap) Close(context.Context) error { return nil }

func benchTrack(b *testing.B, slots int) (*publishedTrack, []byte, []*countWriter) {
	r := testRoom()
	t := speaker(r, "a", 1)
	t.levelID = 1
	t.stats = &counters{}
	t.cur = &ssrcTap{ssrc: 42, tap: &nopTap{}}
	var dests []*slotTrack
	var ws []*countWriter
	for range slots {
		s := newSlotTrack("s", "m", nil)
		w := &countWriter{}
		s.w, s.ssrc, s.pt, s.levelID = w, 9, 111, 1
		s.setSource(t)
		dests = append(dests, s)
		ws = append(ws, w)
	}
	t.dests.Store(&dests)
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 42, SequenceNumber: 1, Timestamp: 960},
		Payload: make([]byte, 80)}
	if err := p.SetExtension(1, []byte{30}); err != nil {
		b.Fatal(err)
	}
	raw, err := p.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	t.lastAt.Store(1) // not the first packet: no kick
	return t, raw, ws
}

// BenchmarkHandle is the per-packet path of a published track: parse, tap,
// loudness, and forwarding to three listeners' slots.
func BenchmarkHandle(b *testing.B) {
	t, raw, ws := benchTrack(b, 3)
	var pkt rtp.Packet
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		t.receive(&pkt, raw, now, nil)
	}
	if ws[2].n == 0 || t.cur.tap.(*nopTap).n == 0 {
		b.Fatal("nothing forwarded")
	}
}

func TestHandleAllocatesNothing(t *testing.T) {
	t.Parallel()
	res := testing.Benchmark(BenchmarkHandle)
	require.Zero(t, res.AllocsPerOp(), "per-packet path allocates")
}

// BenchmarkSelect150 is one selection tick of a full meeting: 150
// participants all publishing and listening on three slots.
func BenchmarkSelect150(b *testing.B) {
	r := testRoom()
	now := time.Now()
	for i := range 150 {
		id := string(rune('A'+i/26)) + string(rune('a'+i%26))
		t := speaker(r, id, uint64(i))
		speak(t, byte(i%100), now)
		listenerWith(r, id, 3)
	}
	r.selectOnce(now)
	b.ReportAllocs()
	for b.Loop() {
		r.selectOnce(now)
	}
}
