package sfu

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// activeWindow is how long after its last packet a track still counts as
// speaking; Opus DTX sends a packet at least every 400 ms.
const activeWindow = time.Second

// publishedTrack is one audio track a WHIP session sends. The media path
// hands it each packet (see media.go): it feeds the Tap, measures
// loudness and forwards to slots.
type publishedTrack struct {
	sess        *session
	room        *room
	identity    string
	seq         uint64 // creation order, a stable tie-break between equals
	offeredSSRC uint32 // what the offer announced for this track, 0 if nothing
	// curSSRC is the SSRC the media path takes for the track (curSet: one
	// was taken); guarded by the inbound's mu.
	curSSRC  uint32
	curSet   bool
	rate     uint32 // negotiated clock rate
	channels int
	levelID  uint8
	log      *slog.Logger
	stats    *counters // the SFU's
	maxSize  int       // Config.MaxPacketSize; 0 (internal tests) is no limit
	// meetingID and zero label the track's events.
	meetingID string
	zero      time.Time

	lastAt   atomic.Int64 // unix nanoseconds of the last packet
	loudness atomic.Int32 // smoothed (127 - RFC 6464 level) × 16
	hasLevel atomic.Bool
	dests    atomic.Pointer[[]*slotTrack]
	// pendingSR is the latest sender report not yet given to the tap; the
	// publisher's RTCP (session.rtcp) stores it, the packet path takes it.
	pendingSR atomic.Pointer[senderReport]

	// Guarded by room.mu: selection and speaking state.
	tickScore  int32
	speaking   bool
	quietSince time.Time

	// mu guards the rest: the packet path holds it for each packet, tap
	// openers and the RTCP reporter take it too.
	mu        sync.Mutex
	cur       *ssrcTap // the SSRC being recorded, and its tap
	rx        reception
	lastSR    lastSR
	packets   uint64
	badPkts   uint64
	tooLarge  uint64
	rateDrops uint64
	// Rate limit as a GCRA: tat is the theoretical arrival time of the
	// next packet in unix ns; a packet earlier than tat-burst is dropped.
	tat      int64
	interval int64
	burst    int64
}

type senderReport struct {
	ssrc    uint32
	ntp     time.Time
	rtpTime uint32
}

func (t *publishedTrack) event(kind EventKind, at time.Time) Event {
	return Event{Kind: kind, MeetingID: t.meetingID, Identity: t.identity, At: at, ClockZero: t.zero}
}

// setRate sets the packet rate limit; called before the reader starts.
func (t *publishedTrack) setRate(perSecond int) {
	t.interval = int64(time.Second) / int64(perSecond)
	t.burst = int64(time.Second)
}

// allow reports whether a packet arriving at now fits the rate limit. A
// zero interval means no limit (internal tests).
func (t *publishedTrack) allow(now int64) bool {
	if t.interval == 0 {
		return true
	}
	if now < t.tat-t.burst {
		return false
	}
	t.tat = max(t.tat, now) + t.interval
	return true
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

// observe records arrival and loudness. Only the packet path calls it,
// under t.mu.
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

func (t *publishedTrack) dropTooLarge(size int) {
	t.tooLarge++
	t.stats.tooLarge.Add(1)
	if t.tooLarge&(t.tooLarge-1) == 0 { // log the 1st, 2nd, 4th, 8th...
		t.log.Warn("dropping RTP packet larger than MaxPacketSize", "count", t.tooLarge, "size", size, "max", t.maxSize)
	}
}

// senderReport takes a sender report the publisher sent for this track:
// the packet path gives it to the tap between two WriteRTP calls, and the
// SFU's receiver reports echo it (their LSR and DLSR fields).
func (t *publishedTrack) senderReport(sr *rtcp.SenderReport, now time.Time) {
	t.pendingSR.Store(&senderReport{ssrc: sr.SSRC, ntp: ntpTime(sr.NTPTime), rtpTime: sr.RTPTime})
	t.mu.Lock()
	t.lastSR = lastSR{ssrc: sr.SSRC, middle: uint32(sr.NTPTime >> 16), at: now}
	t.mu.Unlock()
}

// ntpEpochOffset is the seconds from 1900 (NTP's epoch) to 1970 (Unix's).
const ntpEpochOffset = 2208988800

// ntpTime converts a 64-bit NTP timestamp (32.32 fixed point seconds since
// 1900) to a time.Time.
func ntpTime(ntp uint64) time.Time {
	sec := int64(ntp>>32) - ntpEpochOffset
	frac := (ntp & 0xffffffff) * uint64(time.Second) >> 32
	return time.Unix(sec, int64(frac))
}

// receive handles one decrypted packet under the track's lock; its copies
// leave through out (nil: tests without a socket).
func (t *publishedTrack) receive(pkt *rtp.Packet, b []byte, now time.Time, out *sender) {
	t.mu.Lock()
	t.handle(pkt, b, now, out)
	t.mu.Unlock()
}

// handle processes one received packet. It is the per-packet hot path.
// Called with t.mu held.
func (t *publishedTrack) handle(pkt *rtp.Packet, b []byte, now time.Time, out *sender) {
	st := t.stats
	st.received.Add(1)
	if err := pkt.Unmarshal(b); err != nil {
		t.badPkts++
		st.malformed.Add(1)
		if t.badPkts&(t.badPkts-1) == 0 { // log the 1st, 2nd, 4th, 8th...
			t.log.Warn("dropping unparsable RTP packet", "count", t.badPkts, "err", err)
		}
		return
	}
	if t.maxSize > 0 && len(b) > t.maxSize {
		t.dropTooLarge(len(b))
		return
	}
	if !t.allow(now.UnixNano()) {
		// A flood must fill neither the recording nor listeners' links.
		t.rateDrops++
		st.rate.Add(1)
		if t.rateDrops&(t.rateDrops-1) == 0 {
			t.log.Warn("dropping RTP packet over MaxPacketRate", "count", t.rateDrops, "per_second", int64(time.Second)/t.interval)
		}
		return
	}
	t.packets++
	t.rx.update(pkt.SSRC, pkt.SequenceNumber, pkt.Timestamp, t.rate, now)
	t.record(pkt, b, now)
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
	if d := t.dests.Load(); d != nil && len(*d) > 0 {
		// One packet fans out to every listener of this speaker: cork the
		// sender so the copies leave in a few sendmmsg calls, not one
		// sendto each.
		out.cork()
		var n uint64
		for _, s := range *d {
			if s.write(out, t, pkt, level, hasLevel, now) {
				n++
			}
		}
		out.uncork()
		st.forwarded.Add(n)
	}
}

// giveSenderReport passes sr to tap if it is about the recorded SSRC and
// the tap wants reports.
func (t *publishedTrack) giveSenderReport(st *ssrcTap, sr *senderReport) {
	t.pendingSR.CompareAndSwap(sr, nil)
	if sr.ssrc != st.ssrc {
		return
	}
	if srt, ok := st.tap.(SenderReportTap); ok {
		srt.WriteSenderReport(sr.ntp, sr.rtpTime)
	}
}

// audioLevelID finds the id the publisher negotiated for RFC 6464.
func audioLevelID(exts []webrtc.RTPHeaderExtensionParameter) uint8 {
	for _, e := range exts {
		if e.URI == sdp.AudioLevelURI && e.ID > 0 && e.ID < 256 {
			return uint8(e.ID)
		}
	}
	return 0
}
