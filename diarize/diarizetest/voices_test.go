package diarizetest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/greffier/greffier/diarize/diarizetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestHear(t *testing.T) {
	t.Parallel()
	speech := []diarizetest.Speech{
		{Pitch: 600, Start: ms(250), End: ms(1000)},
		{Pitch: 150, Start: ms(1300), End: ms(2000)},
		{Pitch: 600, Start: ms(2000), End: ms(2600)}, // back to back
		{Pitch: 900, Start: ms(3000), End: ms(3400)},
		{Pitch: 150, Start: ms(3400), End: ms(4000)},
	}
	samples, err := diarizetest.Synthesize(speech)
	require.NoError(t, err)
	got := diarizetest.Hear(samples)
	labels := []string{"SPEAKER_00", "SPEAKER_01", "SPEAKER_00", "SPEAKER_02", "SPEAKER_01"}
	require.Len(t, got, len(speech), "%+v", got)
	for i, s := range speech {
		require.Equal(t, labels[i], got[i].Speaker, "turn %d", i)
		require.InDelta(t, s.Start, got[i].Start, float64(ms(10)), "turn %d start", i)
		require.InDelta(t, s.End, got[i].End, float64(ms(10)), "turn %d end", i)
	}
}

func TestHearJoinsClosePitchesAndIgnoresBlips(t *testing.T) {
	t.Parallel()
	speech := []diarizetest.Speech{
		{Pitch: 800, Start: ms(100), End: ms(140)}, // too short to be speech
		{Pitch: 300, Start: ms(500), End: ms(1000)},
		{Pitch: 350, Start: ms(1500), End: ms(2000)}, // within MinPitchGap/2: same voice
		{Pitch: 500, Start: ms(2500), End: ms(3000)},
	}
	samples, err := diarizetest.Synthesize(speech)
	require.NoError(t, err)
	got := diarizetest.Hear(samples)
	require.Len(t, got, 3, "%+v", got)
	require.Equal(t, "SPEAKER_00", got[0].Speaker, "the blip's voice must not take a label")
	require.Equal(t, "SPEAKER_00", got[1].Speaker)
	require.Equal(t, "SPEAKER_01", got[2].Speaker)
}

func TestHearSilenceAndNoise(t *testing.T) {
	t.Parallel()
	require.Empty(t, diarizetest.Hear(make([]int16, 16000)))
	require.Empty(t, diarizetest.Hear(nil))
	noise := make([]int16, 16000)
	x := uint32(1)
	for i := range noise {
		x = x*1664525 + 1013904223
		noise[i] = int16(x >> 16)
	}
	require.Empty(t, diarizetest.Hear(noise), "white noise has no pitch")
}

func TestSynthesizeRefuses(t *testing.T) {
	t.Parallel()
	for _, s := range []diarizetest.Speech{
		{Pitch: 50, Start: 0, End: ms(100)},
		{Pitch: 2000, Start: 0, End: ms(100)},
		{Pitch: 200, Start: ms(100), End: ms(100)},
		{Pitch: 200, Start: -ms(1), End: ms(100)},
	} {
		_, err := diarizetest.Synthesize([]diarizetest.Speech{s})
		require.Error(t, err, "%+v", s)
	}
}

// BenchmarkHear measures the double's analysis per second of audio.
func BenchmarkHear(b *testing.B) {
	samples, err := diarizetest.Synthesize([]diarizetest.Speech{
		{Pitch: 200, Start: 0, End: 30 * time.Second},
		{Pitch: 450, Start: 30 * time.Second, End: 60 * time.Second},
	})
	require.NoError(b, err)
	b.ReportAllocs()
	b.SetBytes(int64(2 * len(samples)))
	for b.Loop() {
		if len(diarizetest.Hear(samples)) != 2 {
			b.Fatal("wrong turns")
		}
	}
}
