package sfu

import (
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// TestRotatingSpeakersCostAtMostAPacketPerSwitch plays a meeting where
// the loudest group changes every two seconds, with packets through the
// real per-packet path and selection ticks on a fake clock, and counts
// what one listener's slots forward.
func TestRotatingSpeakersCostAtMostAPacketPerSwitch(t *testing.T) {
	t.Parallel()
	r := testRoom()
	const n, slots = 12, 3
	tracks := make([]*publishedTrack, n)
	raws := make([][]byte, n)
	for i := range tracks {
		tracks[i] = speaker(r, string(rune('a'+i)), uint64(i))
		tracks[i].levelID = 1
		tracks[i].stats = &counters{}
		tracks[i].cur = &ssrcTap{ssrc: uint32(i + 1), tap: &nopTap{}}
	}
	l := listenerWith(r, "listener", slots)
	ws := make([]*countWriter, slots)
	for i, s := range l.slots {
		ws[i] = &countWriter{}
		s.w, s.ssrc, s.pt, s.levelID = ws[i], uint32(100+i), 111, 1
	}
	var pkt rtp.Packet
	t0 := time.Unix(10000, 0)
	const ticks = 50 * 20 // 20 s of 20 ms packets
	switches := 0
	last := make([]*publishedTrack, slots)
	for k := range ticks {
		now := t0.Add(time.Duration(k) * 20 * time.Millisecond)
		loud := (k / 100) % (n / slots) // a new loud group every 2 s
		for i, tr := range tracks {
			level := byte(40 + i)
			if i/slots == loud {
				level = 10
			}
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SSRC: uint32(i + 1),
				SequenceNumber: uint16(k), Timestamp: uint32(k) * 960}, Payload: []byte{0x08, 1, 2}}
			require.NoError(t, p.SetExtension(1, []byte{level}))
			b, err := p.Marshal()
			require.NoError(t, err)
			raws[i] = b
			tr.receive(&pkt, raws[i], now, nil)
		}
		if k%5 == 4 { // a selection every 100 ms
			r.selectOnce(now)
			for i, s := range l.slots {
				if s.holder != last[i] {
					switches++
					last[i] = s.holder
				}
			}
		}
	}
	sent := 0
	for _, w := range ws {
		sent += w.n
	}
	t.Logf("%d switches, %d of %d packets forwarded", switches, sent, ticks*slots)
	require.GreaterOrEqual(t, switches, 3*9, "every rotation moves the slots")
	require.GreaterOrEqual(t, sent, ticks*slots-switches-3*5, "a switch costs at most one packet (and the first selection's wait)")
}
