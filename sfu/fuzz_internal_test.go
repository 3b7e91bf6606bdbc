package sfu

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/pion/rtp"
)

// FuzzMediaPath sends whatever a publisher could encrypt through the whole
// media path: SRTP, parsing, limits, the tap, loudness, a listener's slot
// and its SRTP. Nothing may panic, and a packet is either forwarded as
// one well-formed RTP packet or counted as dropped.
func FuzzMediaPath(f *testing.F) {
	for _, seed := range [][]byte{
		mustMarshal(f, rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 1, SequenceNumber: 1}, Payload: []byte{0xfc, 1}}),
		withLevel(f),
		{0x80, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1},                // header only
		{0xa0, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xfc, 0, 0, 9}, // padding longer than the packet
		{0x90, 111, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0xbe, 0xde, 0xff, 0xff},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, plain []byte) {
		if !isRTP(plain) {
			return // never routed to the media path: pion gets it
		}
		enc, dec := srtpPair(t)
		peer := &captureWriter{}
		tr := tapTrack(&logTap{})
		tr.levelID, tr.maxSize = 1, 1500
		s := newSlotTrack("s", "m", nil)
		s.w, s.ssrc, s.pt, s.levelID = peer, 9, 111, 1
		s.setSource(tr)
		tr.dests.Store(&[]*slotTrack{s})
		var rt router
		in := &inbound{stats: tr.stats, keys: dec, tracks: []*publishedTrack{tr}}
		from := netip.MustParseAddrPort("192.0.2.1:5000")
		rt.move(netip.AddrPort{}, from, in)

		var h rtp.Header
		ciphertext, err := enc.EncryptRTP(nil, plain, &h)
		if err != nil {
			return // pion's SRTP refuses it at the sender already
		}
		rt.take(bytes.Clone(ciphertext), from, nil)
		tr.finish()
		tr.sess.wg.Wait()

		st := tr.stats
		dropped := st.malformed.Load() + st.tooLarge.Load() + st.rate.Load() + st.srtp.Load()
		if st.received.Load() != 1 || st.forwarded.Load()+dropped != 1 {
			t.Fatalf("received %d, forwarded %d, dropped %d", st.received.Load(), st.forwarded.Load(), dropped)
		}
		for _, p := range peer.pkts {
			var out rtp.Packet
			if err := out.Unmarshal(p); err != nil {
				t.Fatalf("forwarded a packet that does not parse: %v", err)
			}
			if out.SSRC != 9 || out.PayloadType != 111 {
				t.Fatalf("forwarded SSRC %d PT %d, not the slot's", out.SSRC, out.PayloadType)
			}
		}
	})
}

func withLevel(f *testing.F) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: 1}, Payload: []byte{0xfc}}
	if err := p.SetExtension(1, []byte{30}); err != nil {
		f.Fatal(err)
	}
	return mustMarshal(f, p)
}

func mustMarshal(f *testing.F, p rtp.Packet) []byte {
	b, err := p.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// captureWriter keeps what a slot writes, marshalled.
type captureWriter struct{ pkts [][]byte }

func (w *captureWriter) writeRTP(_ *sender, h *rtp.Header, payload []byte) error {
	b, err := (&rtp.Packet{Header: *h, Payload: payload}).Marshal()
	if err != nil {
		return err
	}
	w.pkts = append(w.pkts, b)
	return nil
}
