package speechtest_test

import (
	"context"
	"errors"
	"math"
	"os/exec"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/speechtest"
)

func TestResample(t *testing.T) {
	t.Parallel()
	t.Run("keeps a tone's pitch", func(t *testing.T) {
		// A 440 Hz tone at 22050 Hz keeps its frequency at 16000 Hz: count
		// zero crossings over one second.
		in := make([]int16, 22050)
		for i := range in {
			in[i] = int16(10000 * math.Sin(2*math.Pi*440*float64(i)/22050))
		}
		out := speechtest.Resample(in, 22050, 16000)
		require.Len(t, out, 16000)
		crossings := 0
		for i := 1; i < len(out); i++ {
			if (out[i-1] < 0) != (out[i] < 0) {
				crossings++
			}
		}
		require.InDelta(t, 880, crossings, 2)
	})
	t.Run("edges", func(t *testing.T) {
		in := []int16{1, 2, 3}
		require.Equal(t, in, speechtest.Resample(in, 16000, 16000))
		require.Empty(t, speechtest.Resample(nil, 22050, 16000))
		require.Equal(t, []int16{7, 7, 7}, speechtest.Resample([]int16{7}, 8000, 24000), "one sample held")
		require.Equal(t, []int16{0, 5, 10, 10}, speechtest.Resample([]int16{0, 10}, 8000, 16000), "interpolated, the last held")
	})
}

func TestTrimSilence(t *testing.T) {
	t.Parallel()
	require.Equal(t, []int16{-201, 0, 300}, speechtest.TrimSilence([]int16{0, 200, -200, -201, 0, 300, 5, speechtest.Quiet}))
	require.Empty(t, speechtest.TrimSilence([]int16{0, 200, -200}))
	require.Empty(t, speechtest.TrimSilence(nil))
}

const text = "Good morning everyone. The meeting starts at nine."

// espeak speaks text, skipping the test when espeak-ng is not installed.
func espeak(t *testing.T, voice string, wpm, rate int) []int16 {
	t.Helper()
	pcm, err := speechtest.Espeak(t.Context(), voice, text, wpm, rate)
	if errors.Is(err, exec.ErrNotFound) {
		t.Skipf("espeak-ng is not installed (apt-get install espeak-ng): real speech is not checked: %v", err)
	}
	require.NoError(t, err)
	return pcm
}

func TestEspeak(t *testing.T) {
	t.Parallel()
	pcm := espeak(t, "en-us", 150, 16000)
	length := time.Duration(len(pcm)) * time.Second / 16000
	require.Greater(t, length, 2*time.Second, "a plausible length for the text")
	require.Less(t, length, 10*time.Second, "a plausible length for the text")
	speech := speechtest.TrimSilence(pcm)
	require.NotEmpty(t, speech)
	require.Less(t, len(speech), len(pcm), "espeak-ng puts silence around its speech")
	var energy float64
	for _, s := range speech {
		energy += float64(s) * float64(s)
	}
	require.Greater(t, math.Sqrt(energy/float64(len(speech))), 300.0, "speech is audible")

	t.Run("rate", func(t *testing.T) {
		t.Parallel()
		half := espeak(t, "en-us", 150, 8000)
		require.InDelta(t, len(pcm)/2, len(half), 1, "the same speech at half the rate")
	})
	t.Run("slower", func(t *testing.T) {
		t.Parallel()
		slow := espeak(t, "en-us", 100, 16000)
		require.Greater(t, len(slow), len(pcm), "fewer words a minute take longer")
	})
	t.Run("another voice", func(t *testing.T) {
		t.Parallel()
		require.NotEqual(t, pcm, espeak(t, "en-us+f3", 150, 16000))
	})
	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := speechtest.Espeak(ctx, "en-us", text, 150, 16000)
		require.ErrorIs(t, err, context.Canceled)
		require.NotErrorIs(t, err, exec.ErrNotFound, "espeak-ng is there: a failure is not its absence")
	})
}

// TestEspeakMissing: without espeak-ng the error says so, wrapping
// exec.ErrNotFound, so that callers can fall back.
func TestEspeakMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := speechtest.Espeak(t.Context(), "en-us", text, 150, 16000)
	require.ErrorIs(t, err, exec.ErrNotFound)
	require.ErrorContains(t, err, "espeak-ng is not installed")
}
