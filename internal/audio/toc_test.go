package audio

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPacketSamples48(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		packet []byte
		want   int
	}{
		{[]byte{0 << 3}, 480},         // SILK NB 10 ms
		{[]byte{1 << 3}, 960},         // SILK 20 ms, one frame
		{[]byte{3 << 3}, 2880},        // SILK 60 ms
		{[]byte{11<<3 | 1}, 2 * 2880}, // SILK WB 60 ms, two frames
		{[]byte{13 << 3}, 960},        // hybrid 20 ms
		{[]byte{13<<3 | 1}, 1920},     // hybrid 20 ms, two frames
		{[]byte{16 << 3}, 120},        // CELT 2.5 ms
		{[]byte{16<<3 | 3, 4}, 480},   // CELT 2.5 ms, four frames
		{[]byte{31<<3 | 3, 3}, 2880},  // CELT 20 ms, three frames
		{[]byte{31 << 3, 1, 2}, 960},
		// The TOC alone: framing it announces but lacks is CheckPacket's.
		{[]byte{31<<3 | 1, 1}, 1920},
		{[]byte{31<<3 | 2}, 1920},
	} {
		n, err := PacketSamples48(tc.packet)
		require.NoError(t, err)
		require.Equal(t, tc.want, n, "%x", tc.packet)
	}
	for _, bad := range [][]byte{nil, {}, {31<<3 | 3}, {31<<3 | 3, 0}, {31<<3 | 3, 7}} {
		n, err := PacketSamples48(bad)
		require.Error(t, err, "%x", bad)
		require.Zero(t, n, "%x", bad)
	}
}

func TestCheckPacket(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		p    []byte
		want int
	}{
		{"empty", nil, 0},
		{"silk 20ms", []byte{1 << 3, 0}, 960},
		{"silk 60ms", []byte{3 << 3}, 2880},
		{"hybrid 10ms", []byte{12 << 3}, 480},
		{"celt 2.5ms", []byte{16 << 3}, 120},
		{"celt 20ms", []byte{31 << 3}, 960},
		{"two equal frames", []byte{31<<3 | 1, 1, 2}, 1920},
		{"two equal frames, odd length", []byte{31<<3 | 1, 1}, 0},
		{"code 2 truncated", []byte{31<<3 | 2}, 0},
		{"code 3 no count", []byte{31<<3 | 3}, 0},
		{"code 3 zero frames", []byte{31<<3 | 3, 0}, 0},
		{"code 3 six 20ms frames", []byte{31<<3 | 3, 6}, 5760},
		{"code 3 over 120ms", []byte{31<<3 | 3, 7}, 0},
	} {
		n, err := CheckPacket(c.p)
		require.Equal(t, c.want, n, c.name)
		require.Equal(t, c.want == 0, err != nil, c.name)
	}
}

func TestCheckPacketAllocatesNothing(t *testing.T) {
	bad := []byte{31<<3 | 1, 1}
	good := []byte{31 << 3, 1, 2}
	allocs := testing.AllocsPerRun(100, func() {
		_, _ = CheckPacket(bad)
		_, _ = CheckPacket(good)
		_, _ = PacketSamples48(nil)
	})
	require.Zero(t, allocs)
}
