package sfu

import (
	"time"

	"github.com/pion/rtcp"
)

// reportInterval is how often the SFU sends its RTCP reports, as pion's
// report interceptors and browsers do.
const reportInterval = time.Second

// maxMisorder is how far back a packet may come and still count as late
// rather than as the sender jumping (RFC 3550 appendix A.1).
const maxMisorder = 100

// reception is what a publisher's receiver reports say about one SSRC
// (RFC 3550 section 6.4.1 and appendix A.1, A.3, A.8): packets expected
// and lost, the highest sequence number, interarrival jitter. The packet
// path updates it; the reporter reads it; both under the track's mu.
type reception struct {
	ssrc     uint32
	started  bool
	base     uint32 // first sequence number
	maxSeq   uint16
	cycles   uint32 // sequence number wraps, shifted left 16
	received uint32
	// expected and received at the last report, for the fraction lost
	// since.
	expectedPrior, receivedPrior uint32
	t0                           time.Time // arrival of the first packet: the arrival clock's zero
	transit                      uint32
	jitter                       uint32 // scaled by 16 (appendix A.8)
	badSeq                       uint16 // after a jump: the packet that would confirm it
}

// update counts one packet. A new SSRC starts over.
func (r *reception) update(ssrc uint32, seq uint16, ts, rate uint32, now time.Time) {
	if !r.started || ssrc != r.ssrc {
		*r = reception{ssrc: ssrc, started: true, base: uint32(seq), maxSeq: seq, received: 1, t0: now, transit: -ts}
		return
	}
	arrival := uint32(int64(now.Sub(r.t0)/time.Microsecond) * int64(rate) / 1e6)
	switch d := seq - r.maxSeq; {
	case d < 0x8000:
		if seq < r.maxSeq {
			r.cycles += 1 << 16
		}
		r.maxSeq = seq
	case r.maxSeq-seq > maxMisorder:
		// Too far back to be late: the sender jumped. Two packets in a row
		// from the new place start the count over (appendix A.1).
		if seq != r.badSeq {
			r.badSeq = seq + 1
			return
		}
		*r = reception{ssrc: ssrc, started: true, base: uint32(seq), maxSeq: seq, received: 1, t0: now, transit: -ts}
		return
	}
	r.received++
	transit := arrival - ts
	d := int32(transit - r.transit)
	r.transit = transit
	if d < 0 {
		d = -d
	}
	r.jitter += uint32(d) - (r.jitter+8)>>4
}

// report is the reception report for now, with the last sender report
// the publisher sent (LSR, DLSR), and starts the next interval.
func (r *reception) report(now time.Time, sr lastSR) (rtcp.ReceptionReport, bool) {
	if !r.started {
		return rtcp.ReceptionReport{}, false
	}
	extMax := r.cycles + uint32(r.maxSeq)
	expected := extMax - r.base + 1
	lost := min(max(int64(expected)-int64(r.received), 0), 0x7fffff)
	expInterval := expected - r.expectedPrior
	recInterval := r.received - r.receivedPrior
	r.expectedPrior, r.receivedPrior = expected, r.received
	var fraction uint8
	if lostInterval := int64(expInterval) - int64(recInterval); expInterval != 0 && lostInterval > 0 {
		fraction = uint8(lostInterval << 8 / int64(expInterval))
	}
	rr := rtcp.ReceptionReport{
		SSRC:               r.ssrc,
		FractionLost:       fraction,
		TotalLost:          uint32(lost),
		LastSequenceNumber: extMax,
		Jitter:             r.jitter >> 4,
	}
	if sr.ssrc == r.ssrc && !sr.at.IsZero() {
		rr.LastSenderReport = sr.middle
		rr.Delay = uint32(now.Sub(sr.at).Seconds() * 65536)
	}
	return rr, true
}

// lastSR is the last sender report a publisher sent: the middle 32 bits of
// its NTP time, and when it arrived.
type lastSR struct {
	ssrc   uint32
	middle uint32
	at     time.Time
}

// runReports sends, every reportInterval until done closes, the receiver
// reports publishers get and the sender reports on listeners' slots. The
// media path bypasses pion's report interceptors, so the SFU writes them
// from its own counts.
func (s *SFU) runReports(done <-chan struct{}) {
	tick := time.NewTicker(reportInterval)
	defer tick.Stop()
	var all []*session
	for {
		select {
		case <-done:
			return
		case <-tick.C:
		}
		s.mu.Lock()
		all = all[:0]
		for _, sess := range s.sessions {
			all = append(all, sess)
		}
		s.mu.Unlock()
		now := time.Now()
		for _, sess := range all {
			if pkts := sess.reports(now); len(pkts) > 0 {
				// Fails only before DTLS is up or after the close: the next
				// tick tries again.
				_ = sess.pc.WriteRTCP(pkts)
			}
		}
	}
}

// reports are the session's RTCP reports for now.
func (s *session) reports(now time.Time) []rtcp.Packet {
	var pkts []rtcp.Packet
	if s.in != nil {
		rr := &rtcp.ReceiverReport{SSRC: s.reporterSSRC}
		for _, t := range s.in.tracks {
			t.mu.Lock()
			r, ok := t.rx.report(now, t.lastSR)
			t.mu.Unlock()
			if ok {
				rr.Reports = append(rr.Reports, r)
			}
		}
		if len(rr.Reports) > 0 {
			pkts = append(pkts, rr)
		}
	}
	if s.listener != nil {
		for _, slot := range s.listener.slots {
			if sr, ok := slot.senderReport(now); ok {
				pkts = append(pkts, sr)
			}
		}
	}
	return pkts
}

// ntpOf is t as a 64-bit NTP timestamp.
func ntpOf(t time.Time) uint64 {
	sec := uint64(t.Unix() + ntpEpochOffset)
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return sec<<32 | frac
}
