package sfu

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/stretchr/testify/require"
)

func TestIsRTP(t *testing.T) {
	t.Parallel()
	rtpPkt := make([]byte, 12)
	rtpPkt[0], rtpPkt[1] = 0x80, 111
	marked := bytes.Clone(rtpPkt)
	marked[1] = 0x80 | 111
	rtcpPkt := bytes.Clone(rtpPkt)
	rtcpPkt[1] = 200 // sender report
	stun := make([]byte, 20)
	dtls := make([]byte, 13)
	dtls[0] = 22
	for _, c := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"rtp", rtpPkt, true},
		{"rtp with marker", marked, true},
		{"rtcp", rtcpPkt, false},
		{"stun", stun, false},
		{"dtls", dtls, false},
		{"short", rtpPkt[:11], false},
	} {
		require.Equal(t, c.want, isRTP(c.b), c.name)
	}
}

// srtpPair is two SRTP contexts with the same keys: what one encrypts,
// the other decrypts.
func srtpPair(t testing.TB) (enc, dec *srtp.Context) {
	t.Helper()
	key, salt := bytes.Repeat([]byte{7}, 16), bytes.Repeat([]byte{9}, 12)
	enc, err := srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm)
	require.NoError(t, err)
	dec, err = srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm, srtp.SRTPReplayProtection(64))
	require.NoError(t, err)
	return enc, dec
}

func encrypt(t testing.TB, ctx *srtp.Context, ssrc uint32, seq uint16, payload []byte) []byte {
	t.Helper()
	plain, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: ssrc, SequenceNumber: seq,
		Timestamp: uint32(seq) * 960}, Payload: payload}).Marshal()
	require.NoError(t, err)
	out, err := ctx.EncryptRTP(nil, plain, nil)
	require.NoError(t, err)
	return out
}

func TestRouterFollowsMovesAndTakesOnlyRoutedRTP(t *testing.T) {
	t.Parallel()
	var r router
	enc, dec := srtpPair(t)
	tap := &logTap{}
	tr := tapTrack(tap)
	in := &inbound{stats: tr.stats, keys: dec, tracks: []*publishedTrack{tr}}
	a := netip.MustParseAddrPort("192.0.2.1:5000")
	b := netip.MustParseAddrPort("192.0.2.1:6000")

	pkt := encrypt(t, enc, 1, 1, []byte{0xfc, 1})
	require.False(t, r.take(bytes.Clone(pkt), a, nil), "nothing routed yet: pion gets it")
	r.move(netip.AddrPort{}, a, in)
	mapped := netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
	require.True(t, r.take(pkt, mapped, nil), "an IPv4-mapped source is the same peer")
	require.False(t, r.take(encrypt(t, enc, 1, 2, []byte{0xfc, 1}), b, nil))
	r.move(a, b, in) // ICE moved the peer
	require.False(t, r.take(encrypt(t, enc, 1, 3, []byte{0xfc, 1}), a, nil))
	require.True(t, r.take(encrypt(t, enc, 1, 4, []byte{0xfc, 1}), b, nil))
	rtcpLike := encrypt(t, enc, 1, 5, []byte{0xfc, 1})
	rtcpLike[1] = 201
	require.False(t, r.take(rtcpLike, b, nil), "RTCP stays with pion")
	r.move(b, netip.AddrPort{}, in)
	require.False(t, r.take(encrypt(t, enc, 1, 6, []byte{0xfc, 1}), b, nil))

	tr.finish()
	tr.sess.wg.Wait()
	require.Len(t, tap.tracks, 1)
	require.Equal(t, []uint16{1, 4}, tap.tracks[0].seqs)
}

func TestInboundDropsWhatFailsSRTPAndCountsIt(t *testing.T) {
	t.Parallel()
	enc, dec := srtpPair(t)
	tap := &logTap{}
	tr := tapTrack(tap)
	var bad []uint64
	in := &inbound{stats: tr.stats, keys: dec, tracks: []*publishedTrack{tr},
		onBad: func(n uint64, err error) { bad = append(bad, n) }}
	now := time.Now()
	good := encrypt(t, enc, 1, 1, []byte{0xfc, 1, 2})
	in.receive(bytes.Clone(good), now, nil)
	in.receive(good, now, nil) // a replay
	tampered := encrypt(t, enc, 1, 2, []byte{0xfc, 1, 2})
	tampered[len(tampered)-1] ^= 1
	in.receive(tampered, now, nil)
	in.receive([]byte{0x80, 111, 0}, now, nil) // not even a header
	require.Equal(t, uint64(3), tr.stats.srtp.Load())
	require.Equal(t, uint64(4), tr.stats.received.Load())
	require.Equal(t, []uint64{1, 2}, bad, "logged at the 1st, 2nd, 4th... failure")

	in.close()
	in.receive(encrypt(t, enc, 1, 3, []byte{0xfc, 1, 2}), now, nil)
	require.Equal(t, uint64(4), tr.stats.received.Load(), "a closed session takes no packet")
	tr.finish()
	tr.sess.wg.Wait()
	require.Equal(t, []uint16{1}, tap.tracks[0].seqs)
}

func TestInboundRoutesBySSRCWithSeveralTracks(t *testing.T) {
	t.Parallel()
	enc, dec := srtpPair(t)
	tap := &logTap{}
	a, b := tapTrack(tap), tapTrack(tap)
	a.offeredSSRC, b.offeredSSRC = 10, 20
	b.sess, b.stats = a.sess, a.stats
	in := &inbound{stats: a.stats, keys: dec, tracks: []*publishedTrack{a, b}}
	now := time.Now()
	in.receive(encrypt(t, enc, 20, 1, []byte{0xfc}), now, nil)
	in.receive(encrypt(t, enc, 10, 1, []byte{0xfc}), now, nil)
	in.receive(encrypt(t, enc, 30, 1, []byte{0xfc}), now, nil)
	require.Equal(t, uint64(1), a.packets)
	require.Equal(t, uint64(1), b.packets)
	require.Equal(t, uint64(1), a.stats.srtp.Load(), "an SSRC no section announced is dropped")
	a.finish()
	b.finish()
	a.sess.wg.Wait()
}

func TestOutboundEncryptsForItsPeer(t *testing.T) {
	t.Parallel()
	b := setupMediaConn(t, "127.0.0.1:0", 1)
	enc, dec := srtpPair(t)
	o := &outbound{}
	h := &rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: 7, Timestamp: 960, SSRC: 99}
	require.ErrorIs(t, o.writeRTP(b.out, h, []byte{1, 2, 3}), errNotConnected, "no keys yet")

	o.set(enc, b.addr(0))
	require.NoError(t, o.writeRTP(b.out, h, []byte{1, 2, 3}))
	buf := make([]byte, 1500)
	require.NoError(t, b.peers[0].SetReadDeadline(time.Now().Add(5*time.Second)))
	n, err := b.peers[0].Read(buf)
	require.NoError(t, err)
	var got rtp.Header
	plain, err := dec.DecryptRTP(nil, buf[:n], &got)
	require.NoError(t, err)
	var p rtp.Packet
	require.NoError(t, p.Unmarshal(plain))
	require.Equal(t, uint32(99), p.SSRC)
	require.Equal(t, uint16(7), p.SequenceNumber)
	require.Equal(t, []byte{1, 2, 3}, p.Payload)

	o.set(nil, netip.AddrPort{})
	require.ErrorIs(t, o.writeRTP(b.out, h, []byte{1, 2, 3}), errNotConnected, "closed")
}

// TestMediaPathAllocatesNothing follows one packet through everything a
// socket's reader does with it: route, decrypt, tap, loudness, fan-out to
// three listeners, encryption and sendmmsg.
func TestMediaPathAllocatesNothing(t *testing.T) {
	b := setupMediaConn(t, "127.0.0.1:0", 3)
	enc, dec := srtpPair(t)
	r := testRoom()
	tr := speaker(r, "a", 1)
	tr.stats, tr.levelID = &counters{}, 1
	tr.cur = &ssrcTap{ssrc: 1, tap: &nopTap{}}
	var dests []*slotTrack
	for i := range 3 {
		out := &outbound{}
		lenc, _ := srtpPair(t)
		out.set(lenc, b.addr(i))
		s := newSlotTrack("s", "m", out)
		s.w, s.ssrc, s.pt, s.levelID = out, uint32(100+i), 111, 1
		s.setSource(tr)
		dests = append(dests, s)
	}
	tr.dests.Store(&dests)
	tr.lastAt.Store(1)
	var rt router
	in := &inbound{stats: tr.stats, keys: dec, tracks: []*publishedTrack{tr}}
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	rt.move(netip.AddrPort{}, from, in)

	// Every packet is encrypted ahead: SRTP refuses replays.
	const runs = 200
	pkts := make([][]byte, runs+1)
	for i := range pkts {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 1, SequenceNumber: uint16(i),
			Timestamp: uint32(i) * 960}, Payload: make([]byte, 60)}
		require.NoError(t, p.SetExtension(1, []byte{20}))
		plain, err := p.Marshal()
		require.NoError(t, err)
		pkts[i], err = enc.EncryptRTP(nil, plain, nil)
		require.NoError(t, err)
	}
	i := 0
	allocs := testing.AllocsPerRun(runs, func() {
		rt.take(pkts[i], from, b.out)
		i++
	})
	require.Zero(t, allocs, "the per-packet path allocates")
	require.Equal(t, uint64(3*(runs+1)), tr.stats.forwarded.Load())
	for j := range 3 {
		require.NoError(t, b.peers[j].SetReadDeadline(time.Now().Add(5*time.Second)))
		buf := make([]byte, 1500)
		_, err := b.peers[j].Read(buf)
		require.NoError(t, err, "listener %d got its copy", j)
	}
}

func TestInboundMovesToANewSSRCOnlyOnceTheOldIsSilent(t *testing.T) {
	t.Parallel()
	enc, dec := srtpPair(t)
	tap := &logTap{}
	tr := tapTrack(tap)
	in := &inbound{stats: tr.stats, keys: dec, tracks: []*publishedTrack{tr}}
	t0 := time.Unix(7000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	for i := range 10 {
		in.receive(encrypt(t, enc, 1, uint16(i), []byte{0xfc}), at(20*i), nil)
		// A stray SSRC interleaved with the live one is not the track's.
		in.receive(encrypt(t, enc, 2, uint16(100+i), []byte{0xfc}), at(20*i+10), nil)
	}
	require.Equal(t, uint64(10), tr.stats.srtp.Load())
	// SSRC 1 fell silent at 180 ms; a second later the sender may move.
	in.receive(encrypt(t, enc, 2, 110, []byte{0xfc}), at(180+1100), nil)
	in.receive(encrypt(t, enc, 2, 111, []byte{0xfc}), at(180+1120), nil)
	in.receive(encrypt(t, enc, 1, 10, []byte{0xfc}), at(180+1130), nil)
	require.Equal(t, uint64(11), tr.stats.srtp.Load(), "now the old SSRC is the stray one")
	tr.finish()
	tr.sess.wg.Wait()
	require.Len(t, tap.tracks, 2, "one recorded track per SSRC, not one per packet")
	bySSRC := map[uint32][]uint16{}
	for _, lt := range tap.tracks {
		bySSRC[lt.info.SSRC] = lt.seqs
	}
	require.Len(t, bySSRC[1], 10)
	require.Equal(t, []uint16{110, 111}, bySSRC[2])
}
