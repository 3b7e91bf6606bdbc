package sfu

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/pion/rtp"
)

// maxHeldBytes bounds what a segment keeps while its tap opens: about a
// minute of 24 kbit/s Opus. A tap slower than that loses the excess, and
// says so.
const maxHeldBytes = 256 << 10

// segment is one recorded stretch of a track: one SSRC, one TrackTap.
// OpenTrack and Close may take a while (files, an upload), and the packet
// path must never wait, so both run on the session's goroutines; packets
// that arrive while the tap opens are held here, in order, and given to
// it as soon as it is open. Fields are guarded by the track's mu.
type segment struct {
	ssrc uint32
	tap  TrackTap // nil until open
	// failed: the tap refused the segment; its packets are forwarded,
	// not recorded, and it is not asked again.
	failed bool
	// retired: the track moved to another segment or closed. Whoever
	// then holds the open tap closes it.
	retired bool
	held    []byte // packets waiting for the tap, each after its 2-byte length
	dropped int
}

// record gives the packet to the tap, holding it if the tap is still
// opening. A new SSRC starts a new segment. Called with t.mu held.
func (t *publishedTrack) record(pkt *rtp.Packet, b []byte, now time.Time) {
	seg := t.seg
	if seg == nil || pkt.SSRC != seg.ssrc {
		seg = t.startSegment(pkt.SSRC, now)
	}
	switch {
	case seg.tap != nil:
		if sr := t.pendingSR.Load(); sr != nil {
			t.giveSenderReport(seg, sr)
		}
		seg.tap.WriteRTP(pkt)
	case !seg.failed:
		seg.hold(b)
	}
}

func (s *segment) hold(b []byte) {
	if len(s.held)+2+len(b) > maxHeldBytes {
		s.dropped++
		return
	}
	s.held = binary.BigEndian.AppendUint16(s.held, uint16(len(b)))
	s.held = append(s.held, b...)
}

// startSegment retires the current segment and opens a new one for ssrc.
// Called with t.mu held.
func (t *publishedTrack) startSegment(ssrc uint32, now time.Time) *segment {
	if old := t.seg; old != nil {
		t.retire(old)
	}
	seg := &segment{ssrc: ssrc}
	t.seg = seg
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
	if !t.sess.spawn(func() { t.open(seg, info) }) {
		seg.failed = true // the session is closing
	}
	return seg
}

// open asks the Tap for the segment's TrackTap and gives it the packets
// held meanwhile.
func (t *publishedTrack) open(seg *segment, info TrackInfo) {
	ctx := t.ctx()
	tap, err := t.sess.sfu.tap.OpenTrack(ctx, info)
	if err != nil {
		t.mu.Lock()
		seg.failed, seg.held = true, nil
		t.mu.Unlock()
		// Keep forwarding: the meeting goes on even if recording fails.
		t.log.Error("recorder refused track; it will not be recorded", "ssrc", info.SSRC, "err", err)
		return
	}
	t.mu.Lock()
	var pkt rtp.Packet
	for b := seg.held; len(b) >= 2; {
		n := int(binary.BigEndian.Uint16(b))
		if err := pkt.Unmarshal(b[2 : 2+n]); err == nil {
			tap.WriteRTP(&pkt)
		}
		b = b[2+n:]
	}
	seg.tap, seg.held = tap, nil
	retired, dropped := seg.retired, seg.dropped
	t.mu.Unlock()
	t.log.Info("track opened", "ssrc", info.SSRC)
	if dropped > 0 {
		t.log.Warn("the recorder took long to open the track: packets lost from its recording", "ssrc", info.SSRC, "lost", dropped)
	}
	if retired {
		t.closeTap(ctx, seg.ssrc, tap)
	}
}

// retire ends seg: its tap, if open, closes in the background. Called
// with t.mu held.
func (t *publishedTrack) retire(seg *segment) {
	seg.retired = true
	if tap := seg.tap; tap != nil {
		if !t.sess.spawn(func() { t.closeTap(t.ctx(), seg.ssrc, tap) }) {
			// The session is closing and waits for nothing more: close here.
			go t.closeTap(t.ctx(), seg.ssrc, tap)
		}
	}
}

// finish retires the last segment once the packet path has let go of the
// track, and closes its tap: it blocks until the recording is stored. A
// tap still opening is closed by its opener.
func (t *publishedTrack) finish() {
	t.mu.Lock()
	seg := t.seg
	t.seg = nil
	var tap TrackTap
	if seg != nil && !seg.retired {
		seg.retired = true
		tap = seg.tap
	}
	t.mu.Unlock()
	if tap != nil {
		t.closeTap(t.ctx(), seg.ssrc, tap)
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
