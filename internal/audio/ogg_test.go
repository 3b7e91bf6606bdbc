package audio

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/pion/opus"
	"github.com/pion/webrtc/v4/pkg/media/oggreader"
	"github.com/stretchr/testify/require"
)

func TestSilenceFrameDecodesToZeros(t *testing.T) {
	require.True(t, celtSilence(silenceFrame))
	dec, err := opus.NewDecoderWithOutput(SampleRate, 1)
	require.NoError(t, err)
	var pcm [maxPacketSamples]int16
	n, err := dec.DecodeToInt16(silenceFrame, pcm[:])
	require.NoError(t, err)
	require.Equal(t, FrameSamples, n)
	require.Equal(t, make([]int16, n), pcm[:n])
}

// TestWriteOggOpus writes packets with a hole and checks the file with an
// independent reader (pion's oggreader) and with ffprobe: the hole is
// filled and every packet keeps its time.
func TestWriteOggOpus(t *testing.T) {
	tr := parseWebM(t, ffmpegWebM(t, "sine=frequency=440:sample_rate=48000:duration=2"))
	var in []TimedPacket
	for i, p := range tr.packets {
		ms := tr.timesMS[i]
		if ms >= 500 && ms < 900 {
			continue // a hole of 400 ms, as DTX leaves
		}
		in = append(in, TimedPacket{MS: ms, Data: p})
	}
	var buf bytes.Buffer
	require.NoError(t, WriteOggOpus(&buf, 1, 0, in))

	r, head, err := oggreader.NewWith(bytes.NewReader(buf.Bytes()))
	require.NoError(t, err)
	require.EqualValues(t, 1, head.Channels)
	require.EqualValues(t, OggPreSkip.Milliseconds()*48, head.PreSkip)
	var got [][]byte
	for {
		page, _, err := r.ParseNextPage()
		if err != nil {
			break
		}
		if bytes.HasPrefix(page, []byte("OpusTags")) {
			continue
		}
		got = append(got, page)
	}
	// Every packet is there, at its place counting 20 ms per packet.
	want := len(tr.packets)
	require.Equal(t, want, len(got), "packets in the file")
	for i, p := range tr.packets {
		if tr.timesMS[i] >= 500 && tr.timesMS[i] < 900 {
			require.True(t, bytes.Equal(silenceFrame, got[i]), "packet %d fills the hole", i)
			continue
		}
		require.True(t, bytes.Equal(p, got[i]), "packet %d", i)
	}

	path := filepath.Join(t.TempDir(), "x.ogg")
	require.NoError(t, os.WriteFile(path, buf.Bytes(), 0o644))
	// ffmpeg decodes it to the packets' length less the pre-skip.
	pcm, err := exec.Command("ffmpeg", "-v", "error", "-i", path, "-f", "s16le", "-ac", "1", "-ar", "48000", "-").Output()
	require.NoError(t, err)
	require.Equal(t, want*960-int(OggPreSkip.Milliseconds())*48, len(pcm)/2)
}
