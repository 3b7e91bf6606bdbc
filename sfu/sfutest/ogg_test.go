package sfutest

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func encode(t *testing.T, frameMS int, seconds float64) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.opus")
	out, err := exec.CommandContext(t.Context(), "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=500:duration=%g", seconds),
		"-c:a", "libopus", "-frame_duration", fmt.Sprint(frameMS), "-y", path).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", out)
	return path
}

func TestReadOggOpusTimestamps(t *testing.T) {
	t.Parallel()
	for _, frameMS := range []int{20, 40, 60} {
		t.Run(fmt.Sprint(frameMS), func(t *testing.T) {
			t.Parallel()
			f, err := readOggOpus(encode(t, frameMS, 2))
			require.NoError(t, err)
			step := uint32(frameMS * 48)
			require.GreaterOrEqual(t, len(f.packets), 2000/frameMS)
			require.Equal(t, uint32(0), f.packets[0].ts)
			for i, p := range f.packets {
				require.Equal(t, step, p.samples, "packet %d", i)
				require.Equal(t, uint32(i)*step, p.ts, "packet %d", i)
			}
			require.Equal(t, 1, f.channels)
			require.NotZero(t, f.preSkip)
		})
	}
}

func TestReadOggOpusRefusesOtherFiles(t *testing.T) {
	t.Parallel()
	_, err := readOggOpus(filepath.Join(t.TempDir(), "missing.opus"))
	require.Error(t, err)
	path := filepath.Join(t.TempDir(), "a.wav")
	out, err := exec.CommandContext(t.Context(), "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "sine=duration=0.1", "-c:a", "libvorbis", "-f", "ogg", "-y", path).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", out)
	_, err = readOggOpus(path)
	require.ErrorContains(t, err, "OpusHead")
}

func TestPacketLevelsFollowLoudness(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "a.opus")
	// ffmpeg's sine has amplitude 1/8: RMS 0.088, about -21 dBov.
	out, err := exec.CommandContext(t.Context(), "ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "sine=frequency=500:duration=0.5", "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono:d=0.5",
		"-filter_complex", "[0][1]concat=n=2:v=0:a=1", "-c:a", "libopus", "-y", path).CombinedOutput()
	require.NoError(t, err, "ffmpeg: %s", out)
	f, err := readOggOpus(path)
	require.NoError(t, err)
	levels, err := packetLevels(f, PublishOptions{})
	require.NoError(t, err)
	require.InDelta(t, 21, int(levels[10]), 2, "tone")
	require.Equal(t, uint8(127), levels[len(levels)-5], "silence")

	fixed, err := packetLevels(f, PublishOptions{Level: LevelFixed, FixedLevel: 200})
	require.NoError(t, err)
	require.Equal(t, uint8(200&0x7f), fixed[0])
}
