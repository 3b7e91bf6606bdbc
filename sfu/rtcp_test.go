package sfu_test

import (
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/sfu"
)

// ntpMiddle is the middle 32 bits of t as an NTP timestamp, what a
// receiver report's LSR field holds: seconds since 1900 in 16.16.
func ntpMiddle(t time.Time) uint32 {
	sec := uint64(t.Unix() + 2208988800)
	frac := uint64(t.Nanosecond()) << 32 / uint64(time.Second)
	return uint32((sec<<32 | frac) >> 16)
}

// The SFU reads RTP itself, past pion's report interceptors, so it writes
// its own RTCP: receiver reports to publishers, sender reports to
// listeners on their slots. Real pion peers must get them.
func TestPeersGetTheSFUsReports(t *testing.T) {
	t.Parallel()
	b := setup(t, sfu.Config{})
	lis := b.listen(t, "bob")
	pub := b.publish(t, "alice", tone(t, 440, 4))

	// Reports leave once a second; the publisher's pion sends its own
	// sender report once a second too, so within a few seconds the SFU's
	// receiver reports echo one (LSR and DLSR).
	var rr rtcp.ReceptionReport
	require.Eventually(t, func() bool {
		rrs := pub.ReceiverReports()
		if len(rrs) == 0 {
			return false
		}
		rr = rrs[len(rrs)-1]
		return rr.LastSenderReport != 0
	}, 4*time.Second, 10*time.Millisecond, "no receiver report echoing a sender report")
	now := time.Now()
	// The publisher notes a packet just after it left: wait for the last
	// one reported to be noted.
	var first, last uint32
	require.Eventually(t, func() bool {
		sent := pub.Sent()
		first, last = uint32(sent[0].SequenceNumber), uint32(sent[len(sent)-1].SequenceNumber)
		return last >= rr.LastSequenceNumber
	}, time.Second, time.Millisecond)
	require.Equal(t, pub.SSRC(), rr.SSRC)
	require.GreaterOrEqual(t, rr.LastSequenceNumber, first)
	require.LessOrEqual(t, rr.LastSequenceNumber, last, "cycle 0: the publisher sends no more than a few hundred packets")
	require.Less(t, last-rr.LastSequenceNumber, uint32(50), "the highest sequence is at most about a second behind (%d sent up to %d)", rr.LastSequenceNumber, last)
	require.Zero(t, rr.TotalLost, "nothing is lost on loopback")
	require.Zero(t, rr.FractionLost)
	require.Less(t, rr.Jitter, uint32(48000/10), "jitter below 100 ms on loopback")
	age := ntpMiddle(now) - rr.LastSenderReport // 1/65536 s since the echoed report's NTP time
	require.Less(t, age, uint32(3*65536), "LSR is the middle of a recent NTP time")
	require.Less(t, rr.Delay, uint32(2*65536), "the echoed sender report came at most about a second before")
	require.LessOrEqual(t, rr.Delay, age+65536/10, "the SFU got the sender report after it was made")
	for i, r := range pub.ReceiverReports() {
		require.Equal(t, pub.SSRC(), r.SSRC, "report %d", i)
		require.Zero(t, r.TotalLost, "report %d", i)
	}

	// bob hears alice on one slot, with sender reports for its SSRC.
	require.Eventually(t, func() bool { return len(lis.SenderReports()) > 0 }, 3*time.Second, 10*time.Millisecond,
		"no sender report on the slot")
	srs := lis.SenderReports()
	counted := 0
	for _, sr := range srs {
		counted = max(counted, int(sr.PacketCount))
	}
	// RTP and RTCP take different paths in both peers: wait for the
	// packets the reports count.
	require.Eventually(t, func() bool { return lis.Count() >= counted }, time.Second, time.Millisecond)
	got := lis.Packets()
	require.Len(t, got, 1)
	for slot, rs := range got {
		require.NotEqual(t, pub.SSRC(), slot, "slots carry their own SSRC")
		for i, sr := range srs {
			require.Equal(t, slot, sr.SSRC, "report %d is on the slot that carries alice", i)
			require.NotZero(t, sr.PacketCount, "report %d", i)
			require.LessOrEqual(t, int(sr.PacketCount), len(rs), "report %d", i)
			// Nothing is lost on loopback: the count covers the first
			// PacketCount packets bob got, their payloads the octets.
			octets := 0
			for _, r := range rs[:sr.PacketCount] {
				octets += len(r.Payload)
			}
			require.Equal(t, uint32(octets), sr.OctetCount, "report %d", i)
			// The RTP time at the NTP time follows the slot's clock: the
			// first packet's timestamp plus 48 kHz since it arrived.
			at := ntpTime(sr.NTPTime)
			want := rs[0].Timestamp + uint32(at.Sub(rs[0].At)*48/time.Millisecond)
			require.InDelta(t, 0, int32(sr.RTPTime-want), 48*100, "report %d: RTP time %d, want about %d", i, sr.RTPTime, want)
			require.Less(t, time.Since(at).Abs(), 3*time.Second, "report %d: NTP time is now", i)
		}
	}
	require.NoError(t, lis.Close(t.Context()))
	require.NoError(t, pub.Close(t.Context()))
}

// ntpTime is a 64-bit NTP timestamp as a time.
func ntpTime(ntp uint64) time.Time {
	frac := (ntp & 0xffffffff) * uint64(time.Second) >> 32
	return time.Unix(int64(ntp>>32)-2208988800, int64(frac))
}
