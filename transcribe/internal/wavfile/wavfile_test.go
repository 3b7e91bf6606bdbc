package wavfile

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	pcm := []int16{0, 1, -1, 32767, -32768, 1234}
	b := Encode(pcm, 16000)
	require.Len(t, b, HeaderLen+2*len(pcm))
	got, rate, err := Decode(b)
	require.NoError(t, err)
	require.Equal(t, 16000, rate)
	require.Equal(t, pcm, got)

	// A streaming writer's unknown data size: what is there is read.
	binary.LittleEndian.PutUint32(b[40:], 0xFFFFFFFF)
	got, _, err = Decode(b)
	require.NoError(t, err)
	require.Equal(t, pcm, got)
}

func TestDecodeRefuses(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":    nil,
		"not RIFF": []byte("OggS........................................"),
		"no data":  Encode(nil, 16000)[:36],
		"8 bits": func() []byte {
			b := Encode([]int16{1}, 16000)
			binary.LittleEndian.PutUint16(b[34:], 8)
			return b
		}(),
	} {
		_, _, err := Decode(b)
		require.Error(t, err, name)
	}
}
