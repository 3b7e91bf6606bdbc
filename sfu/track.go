package sfu

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// activeWindow is how long after its last packet a track still counts as
// speaking; Opus DTX sends a packet at least every 400 ms.
const activeWindow = time.Second

// publishedTrack is one audio track a WHIP session sends. One goroutine
// reads it: it feeds the Tap, measures loudness and forwards to slots.
type publishedTrack struct {
	sess     *session
	room     *room
	identity string
	seq      uint64 // creation order, a stable tie-break between equals
	remote   *webrtc.TrackRemote
	rate     uint32 // negotiated clock rate
	channels int
	levelID  uint8
	log      *slog.Logger

	lastAt   atomic.Int64 // unix nanoseconds of the last packet
	loudness atomic.Int32 // smoothed (127 - RFC 6464 level) × 16
	hasLevel atomic.Bool
	dests    atomic.Pointer[[]*slotTrack]

	tickScore int32 // guarded by room.mu

	tap     TrackTap
	tapSSRC uint32
	tapFail bool
	packets uint64
	badPkts uint64
}

// score ranks the track for slot selection: 0 when silent for
// activeWindow (not a candidate), else 1 + smoothed loudness in dB.
func (t *publishedTrack) score(now time.Time) int32 {
	last := t.lastAt.Load()
	if last == 0 || now.UnixNano()-last > int64(activeWindow) {
		return 0
	}
	if !t.hasLevel.Load() {
		return 1
	}
	return 1 + t.loudness.Load()/16
}

// observe records arrival and loudness. Only the reader goroutine calls it.
func (t *publishedTrack) observe(level byte, hasLevel bool, now time.Time) {
	t.lastAt.Store(now.UnixNano())
	if !hasLevel {
		return
	}
	loud := (127 - int32(level&0x7f)) * 16
	old := t.loudness.Load()
	if !t.hasLevel.Load() {
		old = loud
		t.hasLevel.Store(true)
	}
	// An exponential average over about eight packets (160 ms) follows
	// speech onsets quickly yet ignores single clicks.
	t.loudness.Store(old + (loud-old)/8)
}

// run reads the track until its connection closes, then closes the tap.
func (t *publishedTrack) run(ctx context.Context, maxPacket int) {
	buf := make([]byte, maxPacket)
	var pkt rtp.Packet
	defer t.closeTap(ctx)
	for {
		n, _, err := t.remote.Read(buf)
		if err != nil {
			return
		}
		t.handle(ctx, &pkt, buf[:n], time.Now())
	}
}

// handle processes one received datagram. It is the per-packet hot path.
func (t *publishedTrack) handle(ctx context.Context, pkt *rtp.Packet, b []byte, now time.Time) {
	if err := pkt.Unmarshal(b); err != nil {
		t.badPkts++
		if t.badPkts&(t.badPkts-1) == 0 { // log the 1st, 2nd, 4th, 8th...
			t.log.Warn("dropping unparsable RTP packet", "count", t.badPkts, "err", err)
		}
		return
	}
	t.packets++
	if t.tap == nil || pkt.SSRC != t.tapSSRC {
		t.openTap(ctx, pkt.SSRC, now)
	}
	if t.tap != nil {
		t.tap.WriteRTP(pkt)
	}
	var level byte
	hasLevel := false
	if t.levelID != 0 {
		if ext := pkt.GetExtension(t.levelID); len(ext) > 0 {
			level, hasLevel = ext[0], true
		}
	}
	first := t.lastAt.Load() == 0
	t.observe(level, hasLevel, now)
	if first {
		t.room.kick()
	}
	if d := t.dests.Load(); d != nil {
		for _, s := range *d {
			s.write(t, pkt, level, hasLevel, now)
		}
	}
}

// openTap starts a new recorded track segment: at the first packet, or
// when the SSRC changes mid-session (the old segment is closed first).
func (t *publishedTrack) openTap(ctx context.Context, ssrc uint32, now time.Time) {
	if t.tap != nil {
		t.closeTap(ctx)
	} else if t.tapFail && ssrc == t.tapSSRC {
		return
	}
	t.tapSSRC = ssrc
	info := TrackInfo{
		MeetingID:     t.sess.claims.MeetingID,
		Identity:      t.identity,
		DisplayName:   t.sess.claims.DisplayName,
		SSRC:          ssrc,
		ClockRate:     t.rate,
		Channels:      t.channels,
		ClockZero:     t.sess.clockZero,
		FirstPacketAt: now,
	}
	tap, err := t.sess.sfu.tap.OpenTrack(ctx, info)
	if err != nil {
		// Keep forwarding: the meeting goes on even if recording fails.
		t.tapFail = true
		t.log.Error("recorder refused track; it will not be recorded", "ssrc", ssrc, "err", err)
		return
	}
	t.tap, t.tapFail = tap, false
	t.log.Info("track opened", "ssrc", ssrc)
}

func (t *publishedTrack) closeTap(ctx context.Context) {
	if t.tap == nil {
		return
	}
	tap := t.tap
	t.tap = nil
	if err := tap.Close(ctx); err != nil {
		t.log.Error("closing recorded track", "ssrc", t.tapSSRC, "err", err)
		return
	}
	t.log.Info("track closed", "ssrc", t.tapSSRC, "packets", t.packets)
}

// audioLevelID finds the id the publisher negotiated for RFC 6464.
func audioLevelID(r *webrtc.RTPReceiver) uint8 {
	for _, e := range r.GetParameters().HeaderExtensions {
		if e.URI == sdp.AudioLevelURI && e.ID > 0 && e.ID < 256 {
			return uint8(e.ID)
		}
	}
	return 0
}
