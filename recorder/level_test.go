package recorder

import (
	"testing"

	"github.com/pion/rtp"
	"github.com/stretchr/testify/require"
)

// TestSequencerKeepsEachPacketsLevel: the RFC 6464 level travels with its
// packet through reordering, and a packet without one says -1.
func TestSequencerKeepsEachPacketsLevel(t *testing.T) {
	s := newSequencer(48000, 111, 5*48000)
	s.levelID = 3
	send := func(seq uint16, level int) {
		p := &rtp.Packet{Header: rtp.Header{PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960}, Payload: benchPayload()}
		if level >= 0 {
			require.NoError(t, p.SetExtension(3, []byte{0x80 | byte(level)})) // the V bit is not the level
		}
		s.push(p, int64(seq)*20e6)
	}
	send(1, 30)
	send(3, 90)
	send(2, -1)
	for range windowSize {
		send(100, 10) // push the window past the first three
	}
	var got []int16
	for {
		e, ok := s.pop()
		if !ok {
			break
		}
		got = append(got, e.level)
	}
	require.Equal(t, []int16{30, -1, 90}, got[:3])

	// Without the extension negotiated, nothing is read.
	s = newSequencer(48000, 111, 5*48000)
	p := &rtp.Packet{Header: rtp.Header{PayloadType: 111, SequenceNumber: 1}, Payload: benchPayload()}
	require.NoError(t, p.SetExtension(3, []byte{30}))
	s.push(p, 0)
	s.releaseAll()
	e, ok := s.pop()
	require.True(t, ok)
	require.EqualValues(t, -1, e.level)
}

func TestLevelReadingAllocatesNothing(t *testing.T) {
	s := newSequencer(48000, 111, 5*48000)
	s.levelID = 1
	p := &rtp.Packet{Header: rtp.Header{PayloadType: 111}, Payload: benchPayload()}
	require.NoError(t, p.SetExtension(1, []byte{40}))
	var seq uint16
	step := func() {
		seq++
		p.SequenceNumber, p.Timestamp = seq, uint32(seq)*960
		s.push(p, int64(seq)*20e6)
		for {
			if _, ok := s.pop(); !ok {
				break
			}
		}
	}
	for range 100 {
		step()
	}
	require.Zero(t, testing.AllocsPerRun(1000, step))
}
