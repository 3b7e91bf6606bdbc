package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// rxClock feeds a reception 20 ms Opus packets (960 ticks at 48 kHz), each
// arriving exactly on its timestamp unless told otherwise.
type rxClock struct {
	r    *reception
	ssrc uint32
	t0   time.Time
}

func newRxClock(ssrc uint32) *rxClock {
	return &rxClock{r: &reception{}, ssrc: ssrc, t0: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

// packet delivers packet number i (sequence base+i, timestamp 960·i) at
// its due time plus late.
func (c *rxClock) packet(base uint16, i int, late time.Duration) {
	c.r.update(c.ssrc, base+uint16(i), 5000+uint32(i)*960, 48000, c.at(i).Add(late))
}

func (c *rxClock) at(i int) time.Time { return c.t0.Add(time.Duration(i) * 20 * time.Millisecond) }

func (c *rxClock) report(t *testing.T, now time.Time) rtcp.ReceptionReport {
	t.Helper()
	rr, ok := c.r.report(now, lastSR{})
	require.True(t, ok)
	return rr
}

func TestReceptionNothingBeforeTheFirstPacket(t *testing.T) {
	t.Parallel()
	var r reception
	_, ok := r.report(time.Now(), lastSR{})
	require.False(t, ok)
}

func TestReceptionInOrder(t *testing.T) {
	t.Parallel()
	c := newRxClock(42)
	for i := range 50 {
		c.packet(100, i, 0)
	}
	rr := c.report(t, c.at(50))
	require.Equal(t, rtcp.ReceptionReport{SSRC: 42, LastSequenceNumber: 149}, rr,
		"no loss, highest sequence 149 in cycle 0, no jitter when packets arrive on their timestamps")
}

func TestReceptionLossAndFractionPerInterval(t *testing.T) {
	t.Parallel()
	c := newRxClock(42)
	// 0..9, then 5 lost, then 15..19: 20 expected, 15 received.
	for i := range 10 {
		c.packet(100, i, 0)
	}
	for i := 15; i < 20; i++ {
		c.packet(100, i, 0)
	}
	rr := c.report(t, c.at(20))
	require.Equal(t, uint32(5), rr.TotalLost)
	require.Equal(t, uint8(5*256/20), rr.FractionLost)
	require.Equal(t, uint32(119), rr.LastSequenceNumber)

	// A clean interval: no fraction lost, the cumulative count stays.
	for i := 20; i < 40; i++ {
		c.packet(100, i, 0)
	}
	rr = c.report(t, c.at(40))
	require.Equal(t, uint32(5), rr.TotalLost)
	require.Zero(t, rr.FractionLost)
	require.Equal(t, uint32(139), rr.LastSequenceNumber)

	// 3 of the next 12 lost: the fraction is the interval's, not the total's.
	for i := 40; i < 52; i++ {
		if i != 41 && i != 45 && i != 46 {
			c.packet(100, i, 0)
		}
	}
	rr = c.report(t, c.at(52))
	require.Equal(t, uint32(8), rr.TotalLost)
	require.Equal(t, uint8(3*256/12), rr.FractionLost)

	// An interval with no packet at all: nothing expected, nothing lost.
	rr = c.report(t, c.at(60))
	require.Equal(t, uint32(8), rr.TotalLost)
	require.Zero(t, rr.FractionLost)
}

func TestReceptionSequenceWrap(t *testing.T) {
	t.Parallel()
	c := newRxClock(42)
	// 65530..65535, 0, 1: the wrap counts a cycle.
	for i := range 8 {
		c.packet(65530, i, 0)
	}
	rr := c.report(t, c.at(8))
	require.Equal(t, uint32(1<<16|1), rr.LastSequenceNumber)
	require.Zero(t, rr.TotalLost)
	require.Zero(t, rr.FractionLost)

	// A late packet from before the wrap neither unwraps nor wraps again.
	c.packet(65530, 4, 0) // 65534
	c.packet(65530, 8, 0) // 2
	rr = c.report(t, c.at(9))
	require.Equal(t, uint32(1<<16|2), rr.LastSequenceNumber)
	require.Zero(t, rr.TotalLost)

	// Loss across a wrap: 65533, 65534, then 1; 65535 and 0 are lost.
	c = newRxClock(43)
	c.packet(65533, 0, 0)
	c.packet(65533, 1, 0)
	c.packet(65533, 4, 0)
	rr = c.report(t, c.at(5))
	require.Equal(t, uint32(1<<16|1), rr.LastSequenceNumber)
	require.Equal(t, uint32(2), rr.TotalLost)
	require.Equal(t, uint8(2*256/5), rr.FractionLost)
}

func TestReceptionReorderAndDuplicatesDoNotGoBack(t *testing.T) {
	t.Parallel()
	c := newRxClock(42)
	for _, i := range []int{0, 1, 3, 2, 4, 5, 9, 6, 7, 8} {
		c.packet(100, i, 0)
	}
	rr := c.report(t, c.at(10))
	require.Equal(t, uint32(109), rr.LastSequenceNumber)
	require.Zero(t, rr.TotalLost)
	require.Zero(t, rr.FractionLost)

	// Duplicates and stragglers: more received than expected is no loss,
	// never a negative count, and the highest sequence stays.
	for _, i := range []int{9, 9, 3, 0} {
		c.packet(100, i, 0)
	}
	rr = c.report(t, c.at(11))
	require.Equal(t, uint32(109), rr.LastSequenceNumber)
	require.Zero(t, rr.TotalLost)
	require.Zero(t, rr.FractionLost)
}

func TestReceptionNewSSRCStartsOver(t *testing.T) {
	t.Parallel()
	c := newRxClock(42)
	for i := range 10 {
		if i != 4 {
			c.packet(100, i, time.Duration(i%3)*time.Millisecond)
		}
	}
	rr := c.report(t, c.at(10))
	require.Equal(t, uint32(1), rr.TotalLost)
	require.NotZero(t, rr.Jitter)

	// The sender restarted with another SSRC, sequence and timestamps.
	c.r.update(77, 500, 1_000_000, 48000, c.at(11))
	c.r.update(77, 501, 1_000_960, 48000, c.at(12))
	rr = c.report(t, c.at(13))
	require.Equal(t, rtcp.ReceptionReport{SSRC: 77, LastSequenceNumber: 501}, rr)
}

func TestReceptionJitterFollowsRFC3550(t *testing.T) {
	t.Parallel()
	c := newRxClock(42)
	// Arrivals at 0, 21, 40 and 62 ms for timestamps 0, 20, 40, 60 ms: in
	// 48 kHz ticks the transits are 0, 48, 0, 96, so |D| is 48, 48, 96.
	// Appendix A.8's integer form, J scaled by 16, J += |D| - ((J+8)>>4):
	// 0+48-0 = 48, 48+48-3 = 93, 93+96-6 = 183, reported as 183>>4 = 11
	// (the floating point J += (|D|-J)/16 gives 10.4).
	c.packet(100, 0, 0)
	c.packet(100, 1, time.Millisecond)
	c.packet(100, 2, 0)
	c.packet(100, 3, 2*time.Millisecond)
	require.Equal(t, uint32(183), c.r.jitter)
	rr := c.report(t, c.at(4))
	require.Equal(t, uint32(11), rr.Jitter)

	// On time again, it decays: each step keeps 15/16.
	for i := 4; i < 100; i++ {
		c.packet(100, i, 0)
	}
	rr = c.report(t, c.at(100))
	require.Zero(t, rr.Jitter)

	// Every other packet 1 ms late: |D| is always 48 ticks, and J
	// converges to it.
	for i := 100; i < 400; i++ {
		c.packet(100, i, time.Duration(i%2)*time.Millisecond)
	}
	rr = c.report(t, c.at(400))
	require.InDelta(t, 48, rr.Jitter, 1)
}

func TestReceptionEchoesTheSameSSRCsSenderReport(t *testing.T) {
	t.Parallel()
	c := newRxClock(42)
	c.packet(100, 0, 0)
	at := c.at(1)
	now := at.Add(1500 * time.Millisecond)

	rr, ok := c.r.report(now, lastSR{ssrc: 42, middle: 0x12345678, at: at})
	require.True(t, ok)
	require.Equal(t, uint32(0x12345678), rr.LastSenderReport)
	require.Equal(t, uint32(3*65536/2), rr.Delay, "DLSR is in 1/65536 s")

	rr, ok = c.r.report(now, lastSR{ssrc: 43, middle: 0x12345678, at: at})
	require.True(t, ok)
	require.Zero(t, rr.LastSenderReport, "another SSRC's report is not echoed")
	require.Zero(t, rr.Delay)

	rr, ok = c.r.report(now, lastSR{})
	require.True(t, ok)
	require.Zero(t, rr.LastSenderReport, "no report yet")
	require.Zero(t, rr.Delay)
}

func TestTrackKeepsThePublishersSenderReport(t *testing.T) {
	t.Parallel()
	tr := &publishedTrack{}
	now := time.Now()
	ntp := uint64(0xaaaabbbbccccdddd)
	tr.senderReport(&rtcp.SenderReport{SSRC: 42, NTPTime: ntp, RTPTime: 960}, now)
	require.Equal(t, lastSR{ssrc: 42, middle: 0xbbbbcccc, at: now}, tr.lastSR, "LSR is the middle 32 bits")
	p := tr.pendingSR.Load()
	require.NotNil(t, p)
	require.Equal(t, senderReport{ssrc: 42, ntp: ntpTime(ntp), rtpTime: 960}, *p)

	// What the SFU's receiver report then says.
	tr.rx.update(42, 7, 960, 48000, now)
	rr, ok := tr.rx.report(now.Add(250*time.Millisecond), tr.lastSR)
	require.True(t, ok)
	require.Equal(t, uint32(0xbbbbcccc), rr.LastSenderReport)
	require.Equal(t, uint32(65536/4), rr.Delay)
}

func TestSlotSenderReport(t *testing.T) {
	t.Parallel()
	src, other := &publishedTrack{}, &publishedTrack{}
	s := newSlotTrack("s", "m", nil)
	w := &countWriter{}
	s.w, s.ssrc, s.pt = w, 777, 111
	now := time.Now()
	_, ok := s.senderReport(now)
	require.False(t, ok, "nothing sent, nothing to report")

	s.setSource(src)
	require.False(t, s.write(nil, other, &rtp.Packet{Header: rtp.Header{SSRC: 9}, Payload: make([]byte, 99)}, 0, false, now))
	_, ok = s.senderReport(now)
	require.False(t, ok, "a packet not sent is not counted")

	for i, size := range []int{10, 20, 30} {
		p := &rtp.Packet{Header: rtp.Header{SSRC: 1, SequenceNumber: uint16(100 + i), Timestamp: uint32(1000 + 960*i)},
			Payload: make([]byte, size)}
		require.True(t, s.write(nil, src, p, 0, false, now.Add(time.Duration(i)*20*time.Millisecond)))
	}
	last := w.last.Timestamp
	at := now.Add(40*time.Millisecond + 25*time.Millisecond)
	sr, ok := s.senderReport(at)
	require.True(t, ok)
	require.Equal(t, &rtcp.SenderReport{
		SSRC:        777,
		NTPTime:     ntpOf(at),
		RTPTime:     last + 25*48, // 48 ticks per ms since the last packet
		PacketCount: 3,
		OctetCount:  60, // payload octets only (RFC 3550 6.4.1)
	}, sr)
}

func TestSessionReports(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tr := &publishedTrack{}
	tr.rx.update(42, 7, 960, 48000, now)
	silent := &publishedTrack{} // nothing received: no block
	pub := &session{in: &inbound{tracks: []*publishedTrack{tr, silent}}, reporterSSRC: 5}
	pkts := pub.reports(now)
	require.Len(t, pkts, 1)
	rr, ok := pkts[0].(*rtcp.ReceiverReport)
	require.True(t, ok)
	require.Equal(t, uint32(5), rr.SSRC)
	require.Equal(t, []rtcp.ReceptionReport{{SSRC: 42, LastSequenceNumber: 7}}, rr.Reports)

	require.Empty(t, (&session{in: &inbound{tracks: []*publishedTrack{silent}}}).reports(now), "no empty receiver report")

	sent, idle := newSlotTrack("a", "m", nil), newSlotTrack("b", "m", nil)
	sent.w, sent.ssrc = &countWriter{}, 31
	idle.w, idle.ssrc = &countWriter{}, 32
	sent.setSource(tr)
	require.True(t, sent.write(nil, tr, &rtp.Packet{Header: rtp.Header{SSRC: 42}, Payload: []byte{1}}, 0, false, now))
	lis := &session{listener: &listener{slots: []*slotTrack{idle, sent}}}
	pkts = lis.reports(now)
	require.Len(t, pkts, 1, "a sender report for the slot that sent, none for the idle one")
	sr, ok := pkts[0].(*rtcp.SenderReport)
	require.True(t, ok)
	require.Equal(t, uint32(31), sr.SSRC)
}

func TestNTPRoundTrip(t *testing.T) {
	t.Parallel()
	half := time.Date(2026, 1, 1, 0, 0, 0, 500_000_000, time.UTC)
	require.Equal(t, uint64(half.Unix()+ntpEpochOffset)<<32|1<<31, ntpOf(half))
	for _, at := range []time.Time{
		half,
		time.Date(2026, 7, 14, 9, 30, 1, 123_456_789, time.UTC),
		time.Date(2031, 12, 31, 23, 59, 59, 999_999_999, time.FixedZone("x", 3600)),
		time.Now(),
	} {
		back := ntpTime(ntpOf(at))
		require.InDelta(t, 0, back.Sub(at), 1, "%v came back as %v", at, back)
	}
	// Ticks of 2^-32 s survive the trip through nanoseconds to within one.
	for _, ntp := range []uint64{0xe8f0_0000_0000_0001, 0xe8f0_1234_89ab_cdef, 0xe8f0_ffff_ffff_ffff} {
		back := ntpOf(ntpTime(ntp))
		require.InDelta(t, 0, int64(back-ntp), 6, "%#x came back as %#x", ntp, back)
	}
}

func TestReceptionStartsOverWhenTheSenderJumps(t *testing.T) {
	t.Parallel()
	var r reception
	t0 := time.Unix(5000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 20 * time.Millisecond) }
	for i := range 10 {
		r.update(1, uint16(100+i), uint32(i)*960, 48000, at(i))
	}
	// The sender restarts its numbering 40,000 back: not a late packet.
	r.update(1, 60000, 0, 48000, at(10))
	rep, ok := r.report(at(10), lastSR{})
	require.True(t, ok)
	require.Equal(t, uint32(109), rep.LastSequenceNumber, "one packet from afar is not yet believed")
	r.update(1, 60001, 960, 48000, at(11))
	r.update(1, 60002, 1920, 48000, at(12))
	rep, _ = r.report(at(12), lastSR{})
	require.Equal(t, uint32(60002), rep.LastSequenceNumber, "two in a row start the count over")
	require.Zero(t, rep.TotalLost)
}
