package sfu

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/pion/rtp"
)

// maxHeldBytes bounds what an ssrcTap holds while its tap opens: about a
// minute of 24 kbit/s Opus. A tap slower than that loses the excess, and
// says so.
const maxHeldBytes = 256 << 10

// ssrcTap records one SSRC of a track through one TrackTap.
// OpenTrack and Close may take a while (files, an upload), and the packet
// path must never wait, so both run on the session's goroutines; packets
// that arrive while the tap opens are held here, in order, and given to
// it as soon as it is open. Fields are guarded by the track's mu.
type ssrcTap struct {
	ssrc uint32
	tap  TrackTap // nil until open
	// failed: the Tap refused this SSRC; its packets are forwarded,
	// not recorded, and it is not asked again.
	failed bool
	// retired: the track moved to another SSRC or closed. Whoever
	// then holds the open tap closes it.
	retired bool
	held    []byte // packets waiting for the tap, each after its 2-byte length
	dropped int
}

// record gives the packet to the tap, holding it if the tap is still
// opening. A new SSRC starts a new ssrcTap. Called with t.mu held.
func (t *publishedTrack) record(pkt *rtp.Packet, b []byte, now time.Time) {
	st := t.cur
	if st == nil || pkt.SSRC != st.ssrc {
		st = t.startTap(pkt.SSRC, now)
	}
	switch {
	case st.tap != nil:
		if sr := t.pendingSR.Load(); sr != nil {
			t.giveSenderReport(st, sr)
		}
		st.tap.WriteRTP(pkt)
	case !st.failed:
		st.hold(b)
	}
}

func (s *ssrcTap) hold(b []byte) {
	if len(s.held)+2+len(b) > maxHeldBytes {
		s.dropped++
		return
	}
	s.held = binary.BigEndian.AppendUint16(s.held, uint16(len(b)))
	s.held = append(s.held, b...)
}

// startTap retires the current ssrcTap and opens a new one for ssrc.
// Called with t.mu held.
func (t *publishedTrack) startTap(ssrc uint32, now time.Time) *ssrcTap {
	if old := t.cur; old != nil {
		t.retire(old)
	}
	st := &ssrcTap{ssrc: ssrc}
	t.cur = st
	info := TrackInfo{
		MeetingID:     t.sess.claims.MeetingID,
		Identity:      t.identity,
		DisplayName:   t.sess.claims.DisplayName,
		SSRC:          ssrc,
		ClockRate:     t.rate,
		Channels:      t.channels,
		AudioLevelID:  t.levelID,
		ClockZero:     t.sess.clockZero,
		FirstPacketAt: now,
	}
	if !t.sess.spawn(func() { t.open(st, info) }) {
		st.failed = true // the session is closing
	}
	return st
}

// open asks the Tap for st's TrackTap and gives it the packets
// held meanwhile.
func (t *publishedTrack) open(st *ssrcTap, info TrackInfo) {
	ctx := t.ctx()
	tap, err := t.sess.sfu.tap.OpenTrack(ctx, info)
	if err != nil {
		t.mu.Lock()
		st.failed, st.held = true, nil
		t.mu.Unlock()
		// Keep forwarding: the meeting goes on even if recording fails.
		t.log.Error("recorder refused track; it will not be recorded", "ssrc", info.SSRC, "err", err)
		return
	}
	// The held packets go to the tap in order, outside the track's lock
	// and no faster than the tap takes them: packets that arrive
	// meanwhile are held in turn, and given next, until none is left and
	// the tap takes them directly. Given all at once under the lock, the
	// seconds of packets a slow open held overflowed the recorder's queue.
	var pkt rtp.Packet
	var retired bool
	var dropped int
	for {
		t.mu.Lock()
		held := st.held
		st.held = nil
		if len(held) == 0 {
			st.tap = tap
			retired, dropped = st.retired, st.dropped
			t.mu.Unlock()
			break
		}
		t.mu.Unlock()
		for b := held; len(b) >= 2; {
			n := int(binary.BigEndian.Uint16(b))
			if err := pkt.Unmarshal(b[2 : 2+n]); err == nil {
				waitForFree(ctx, tap)
				tap.WriteRTP(&pkt)
			}
			b = b[2+n:]
		}
	}
	t.log.Info("track opened", "ssrc", info.SSRC)
	if dropped > 0 {
		t.log.Warn("the recorder took long to open the track: packets lost from its recording", "ssrc", info.SSRC, "lost", dropped)
	}
	if retired {
		t.closeTap(ctx, st.ssrc, tap)
	}
}

// freeWait bounds how long one held packet waits for a tap's room: a tap
// that stopped writing gets the packet anyway, and counts what it drops.
const freeWait = time.Second

// waitForFree waits until tap can take a packet without dropping one, if
// it says (BoundedTap), for at most freeWait.
func waitForFree(ctx context.Context, tap TrackTap) {
	r, ok := tap.(BoundedTap)
	if !ok || r.Free() > 0 {
		return
	}
	deadline := time.Now().Add(freeWait)
	for r.Free() <= 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
}

// retire ends st: its tap, if open, closes in the background. Called
// with t.mu held.
func (t *publishedTrack) retire(st *ssrcTap) {
	st.retired = true
	if tap := st.tap; tap != nil {
		if !t.sess.spawn(func() { t.closeTap(t.ctx(), st.ssrc, tap) }) {
			// The session is closing and waits for nothing more: close here.
			go t.closeTap(t.ctx(), st.ssrc, tap)
		}
	}
}

// finish retires the last ssrcTap once the packet path has let go of the
// track, and closes its tap: it blocks until the recording is stored. A
// tap still opening is closed by its opener.
func (t *publishedTrack) finish() {
	t.mu.Lock()
	st := t.cur
	t.cur = nil
	var tap TrackTap
	if st != nil && !st.retired {
		st.retired = true
		tap = st.tap
	}
	t.mu.Unlock()
	if tap != nil {
		t.closeTap(t.ctx(), st.ssrc, tap)
	}
}

func (t *publishedTrack) closeTap(ctx context.Context, ssrc uint32, tap TrackTap) {
	if err := tap.Close(ctx); err != nil {
		t.log.Error("closing recorded track", "ssrc", ssrc, "err", err)
		return
	}
	t.log.Info("track closed", "ssrc", ssrc)
}

// ctx is what taps open and close under: the SFU's, which outlives
// requests.
func (t *publishedTrack) ctx() context.Context {
	if ctx := t.sess.sfu.baseCtx; ctx != nil {
		return ctx
	}
	return context.Background()
}
