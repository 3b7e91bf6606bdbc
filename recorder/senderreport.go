package recorder

import (
	"time"
)

// minDriftSpan is how much RTP time sender reports must span before a
// drift is reported: RTP timestamps are whole ticks (21 µs at 48 kHz), so
// over a minute the estimate is good to well under a part per million.
const minDriftSpan = time.Minute

// Timing is where a track sits on the meeting clock and what its sender's
// RTCP sender reports said about its clock.
type Timing struct {
	// StartMS is where the track's first block sits on the meeting clock:
	// the arrival of its first packet. It is fixed once that block is
	// written (the Listener is told it then); the sender reports correct
	// the times of the blocks that follow instead (see timeline.go).
	StartMS int64
	// FromSenderReports says the sender reports place the blocks, offset
	// and rate: there are reports and the sender's wall clock agrees with
	// ours within Config.SenderClockSkew. When it does not, only the
	// reports' rate (the drift) is corrected.
	FromSenderReports bool
	// SenderReports counts the reports received after the first packet
	// (since the sender last restarted its RTP timeline).
	SenderReports int
	// ReportSpan is the RTP time between the first and the last report.
	ReportSpan time.Duration
	// DriftPPM is how much faster the sender's RTP clock runs than its
	// wall clock, in parts per million: at +100, an hour of wall time
	// holds 360 ms more RTP time. Block times are corrected for it.
	// 0 until ReportSpan reaches a minute.
	DriftPPM float64
	// SenderSkew is the first packet's arrival minus the sender's wall
	// time of its capture: network delay plus the offset between the two
	// wall clocks. 0 without reports.
	SenderSkew time.Duration
	// CorrectionMS is how far the last block written sits from where raw
	// RTP ticks at the nominal rate would have put it.
	CorrectionMS int64
}

// srClock fits wall time (the reports' NTP) as a straight line of media
// time (unwrapped RTP ticks) by least squares, updated per report in
// constant space. Both are kept relative to the first report so the
// float64 sums stay exact over days.
type srClock struct {
	n        int
	x0, y0   int64   // first report: media ticks, NTP unix ns
	mx, my   float64 // means of x-x0 and y-y0
	sxx, sxy float64 // co-moments
	lastX    int64
	lastY    int64
}

// add takes one report. A report that does not move both clocks forward
// (a repeat, or a sender whose wall clock stepped back) is ignored.
func (c *srClock) add(media, ntp int64) bool {
	if c.n > 0 && (media <= c.lastX || ntp <= c.lastY) {
		return false
	}
	if c.n == 0 {
		c.x0, c.y0 = media, ntp
	}
	c.lastX, c.lastY = media, ntp
	x, y := float64(media-c.x0), float64(ntp-c.y0)
	c.n++
	dx := x - c.mx
	c.mx += dx / float64(c.n)
	c.my += (y - c.my) / float64(c.n)
	c.sxx += dx * (x - c.mx)
	c.sxy += dx * (y - c.my)
	return true
}

// slope is wall ns per media tick: the fitted one once two reports
// exist, the nominal one before.
func (c *srClock) slope(rate int64) float64 {
	if c.n < 2 || c.sxx == 0 {
		return 1e9 / float64(rate)
	}
	return c.sxy / c.sxx
}

// wall is the sender's wall time (unix ns) of media time m.
func (c *srClock) wall(m int64, rate int64) int64 {
	return c.y0 + int64(c.my+c.slope(rate)*(float64(m-c.x0)-c.mx))
}

func (c *srClock) span(rate int64) time.Duration {
	if c.n == 0 {
		return 0
	}
	return time.Duration((c.lastX - c.x0) * int64(time.Second) / rate)
}

func (c *srClock) driftPPM(rate int64) float64 {
	if c.span(rate) < minDriftSpan {
		return 0
	}
	ticksPerSecond := 1e9 / c.slope(rate)
	return (ticksPerSecond/float64(rate) - 1) * 1e6
}

// WriteSenderReport takes an RTCP sender report of the track's sender: at
// wall-clock time ntp (the sender's clock) its RTP clock read rtpTime.
// Reports map RTP time to wall time: the blocks that follow are placed
// by it, so the sender's clock drift and its first packet's delay are
// corrected (see timeline.go and Timing). It must not be called
// concurrently with WriteRTP; reports before the first packet are ignored
// (the next one will do). It allocates nothing.
func (w *Writer) WriteSenderReport(ntp time.Time, rtpTime uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || !w.seq.started {
		return
	}
	w.sr.add(w.seq.mediaOf(rtpTime), ntp.UnixNano())
}

// Timing returns where the track sits on the meeting clock as known now;
// after Close, what was recorded.
func (w *Writer) Timing() Timing {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timed {
		return w.timing
	}
	return w.timingLocked()
}

// timingLocked reports the track's timing; w.mu must be held.
func (w *Writer) timingLocked() Timing {
	rate := w.seq.rate
	t := Timing{
		StartMS: w.sc.StartMS, SenderReports: w.sr.n, ReportSpan: w.sr.span(rate),
		DriftPPM: w.sr.driftPPM(rate), CorrectionMS: w.tl.correctionMS(),
	}
	if w.sr.n == 0 || !w.hasZero {
		return t
	}
	t.SenderSkew = w.senderSkewLocked()
	t.FromSenderReports = t.SenderSkew.Abs() <= w.r.cfg.SenderClockSkew
	return t
}

// senderSkewLocked is the first packet's arrival minus the sender's wall
// time of the first block; w.mu must be held, reports and a first block
// must exist.
func (w *Writer) senderSkewLocked() time.Duration {
	return time.Duration(w.sc.FirstPacketAt.UnixNano() - w.sr.wall(w.zeroTS, w.seq.rate))
}

// targetLocked is where the sender reports put the block at media time
// ts: µs on the track clock, false without reports. w.mu must be held and
// the first block placed. It allocates nothing.
func (w *Writer) targetLocked(ts int64) (int64, bool) {
	if w.sr.n == 0 {
		return 0, false
	}
	wall := w.sr.wall(ts, w.seq.rate)
	if w.senderSkewLocked().Abs() <= w.r.cfg.SenderClockSkew {
		return floorDiv(wall-w.wallStart, 1000), true
	}
	// The sender's wall clock is not ours: keep the first block's place
	// and take only the rate of the reports.
	return floorDiv(wall-w.sr.wall(w.zeroTS, w.seq.rate), 1000), true
}

// snapshot is the track's record with its best start so far.
func (w *Writer) snapshot() (sidecar, Timing) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t := w.timingLocked()
	sc := w.sc
	sc.StartMS, sc.DriftPPM = t.StartMS, t.DriftPPM
	return sc, t
}
