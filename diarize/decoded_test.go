package diarize_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/audio"
	"github.com/stretchr/testify/require"
)

// Through the real path: ffmpeg's Opus, our decoder, the VoiceDetector.
func TestVoiceDetectorOnDecodedOpus(t *testing.T) {
	t.Parallel()
	ffmpeg, err := exec.LookPath("ffmpeg")
	require.NoError(t, err, "this test needs ffmpeg on PATH")
	out := filepath.Join(t.TempDir(), "x.webm")
	// Tone bursts over pink noise at about -50 dBFS.
	src := "sine=f=300:d=8,volume='0.3*(between(t,1,2.5)+between(t,4,4.6)+between(t,5.5,7))':eval=frame[s];" +
		"anoisesrc=c=pink:a=0.004:d=8[n];[s][n]amix=normalize=0"
	msg, err := exec.Command(ffmpeg, "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", src, "-ac", "2", "-c:a", "libopus", "-b:a", "32k", out).CombinedOutput()
	require.NoError(t, err, "%s", msg)
	data, err := os.ReadFile(out)
	require.NoError(t, err)

	seg := diarize.NewVoiceDetector(diarize.VoiceDetectorConfig{})
	var found []diarize.Speech
	st, err := audio.DecodeWebM(context.Background(), bytes.NewReader(data), func(f []int16) error {
		found = append(found, seg.Write(f)...)
		return nil
	})
	require.NoError(t, err)
	found = append(found, seg.Flush()...)
	require.InDelta(t, 8000, st.Duration.Milliseconds(), 5)

	want := [][2]int64{{1000, 2500}, {4000, 4600}, {5500, 7000}}
	require.Len(t, found, len(want))
	for i, w := range want {
		require.InDelta(t, w[0], found[i].StartMS, 40, "segment %d starts at %d", i, found[i].StartMS)
		require.InDelta(t, w[1], found[i].EndMS, 40, "segment %d ends at %d", i, found[i].EndMS)
	}
}
