package recorder

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/store"
)

// FuzzWriter feeds arbitrary packet sequences, with a sender report every
// 8 packets, and checks that every packet
// is accounted for exactly once, the track always closes, and the file
// holds exactly the written blocks in strictly increasing time.
//
// Each 6 input bytes make one packet: sequence delta (int8), timestamp
// delta in 2.5 ms units (int16), arrival advance in ms, and a payload
// selector (valid Opus of a random frame size, or the raw bytes).
func FuzzWriter(f *testing.F) {
	seed := func(pkts ...[6]byte) []byte {
		var b []byte
		for _, p := range pkts {
			b = append(b, p[:]...)
		}
		return b
	}
	f.Add(seed([6]byte{1, 0, 8, 20, 0, 0}, [6]byte{1, 0, 8, 20, 0, 0}, [6]byte{1, 0, 8, 20, 0, 0}))
	f.Add(seed([6]byte{1, 0, 8, 20, 0, 0}, [6]byte{0xFF, 0xFF, 0xF8, 20, 0, 0}, [6]byte{3, 0, 24, 20, 0, 0}))        // reorder
	f.Add(seed([6]byte{1, 0, 8, 20, 0, 0}, [6]byte{1, 0x7F, 0xFF, 0, 0, 0}, [6]byte{1, 0, 8, 20, 0, 0}))             // wild jump
	f.Add(seed([6]byte{1, 0, 8, 20, 0, 0}, [6]byte{0, 0, 0, 0, 0, 0}, [6]byte{1, 0, 8, 20, 1, 2}))                   // dup, garbage
	f.Add(seed([6]byte{0x80, 0, 8, 20, 0, 0}, [6]byte{0x7F, 0x80, 0, 255, 0, 0}, [6]byte{0x7F, 0x80, 0, 255, 0, 0})) // huge deltas
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 6*400 {
			in = in[:6*400]
		}
		b := setup(t)
		w := b.open(t)
		var (
			seq uint16 = 100
			ts  uint32 = 1 << 31
			fed int64
		)
		for len(in) >= 6 {
			c := in[:6]
			in = in[6:]
			seq += uint16(int8(c[0]))
			ts += uint32(int32(int16(binary.BigEndian.Uint16(c[1:3]))) * 120)
			b.clock.Advance(time.Duration(c[3]) * time.Millisecond)
			var payload []byte
			if c[4]&1 == 0 {
				payload = []byte{c[4] &^ 3, c[5], c[4]} // TOC code 0: one frame, always valid
			} else {
				payload = c[4:6]
			}
			w.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts}, Payload: payload})
			fed++
			if fed%8 == 0 {
				// A sender report that says the last packet was captured
				// up to 255 ms before its arrival: targets that jitter.
				w.WriteSenderReport(b.clock.Now().Add(-time.Duration(c[5])*time.Millisecond), ts)
			}
		}
		err := w.Close(context.Background())
		st := w.Stats()
		require.Equal(t, fed, st.Written+st.Late+st.Duplicate+st.Garbage+st.BadTimestamp+st.Overflow,
			"every packet counted once: %+v", st)
		row := b.catalog.row(w.ID())
		if st.Written == 0 {
			require.True(t, errors.Is(err, ErrNoAudio), "%v", err)
			require.Equal(t, store.TrackFailed, row.State)
			return
		}
		require.NoError(t, err)
		require.Equal(t, store.TrackStored, row.State)
		p := parseWebM(t, readBlob(t, b, row.BlobKey))
		times := p.blockTimes()
		require.Len(t, times, int(st.Written))
		for i := 1; i < len(times); i++ {
			require.Greater(t, times[i], times[i-1], "block times strictly increase")
		}
		require.Greater(t, row.DurationMS, times[len(times)-1])
		require.Equal(t, float64(row.DurationMS), p.Segment.Info.Duration)
	})
}

// FuzzScanBlocks: whatever a crash or a disk leaves, reading a spool back
// never panics and never yields blocks out of order.
func FuzzScanBlocks(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x1A, 0x45, 0xDF, 0xA3, 0x80, 0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Add([]byte{0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x81, 0x05, 0xA3, 0x86, 0x81, 0x00, 0x01, 0x80, 0xF8, 0x00})
	f.Add([]byte{0x1F, 0x43, 0xB6, 0x75, 0xFF, 0xE7, 0x88, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF})
	f.Fuzz(func(t *testing.T, in []byte) {
		last := int64(-1 << 62)
		_ = scanBlocks(bytes.NewReader(in), func(ms int64, frame []byte) error {
			require.GreaterOrEqual(t, ms, last)
			last = ms
			return nil
		})
		_, _ = findDuration(in)
	})
}
