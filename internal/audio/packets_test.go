package audio

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The live path must hear exactly what a later decode of the file hears,
// gaps included.
func TestPacketDecoderMatchesDecodeWebM(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "alice.webm")
	src := parseWebM(t, runTool(t, "ffmpeg", []string{"-v", "error", "-i", "../../testdata/meeting/alice.opus", "-c", "copy", out}, out))
	// As the recorder writes them: 20 ms apart, with a lost packet and a
	// stretch of DTX silence.
	var times []int64
	at := int64(0)
	for i := range src.packets {
		times = append(times, at)
		at += 20
		switch i {
		case 40:
			at += 20
		case 120:
			at += 700
		}
	}
	blocks := retime(src.packets, times)
	batch, bst := decodeAll(t, buildWebM(t, src.entry, blocks))

	var live []int16
	pd, err := NewPacketDecoder(time.Duration(src.entry.CodecDelay), func(f []int16) error {
		require.Len(t, f, FrameSamples)
		live = append(live, f...)
		return nil
	})
	require.NoError(t, err)
	for _, b := range blocks {
		require.NoError(t, pd.Decode(time.Duration(b.ms)*time.Millisecond, b.data))
	}
	require.NoError(t, pd.Flush())
	require.Equal(t, bst.Gaps, pd.Stats().Gaps)
	require.Equal(t, 2, pd.Stats().Gaps)
	require.Greater(t, len(batch), SampleRate*8)
	require.Equal(t, len(batch), len(live))
	for i := range batch {
		if batch[i] != live[i] {
			t.Fatalf("sample %d differs: batch %d, live %d", i, batch[i], live[i])
		}
	}
}
