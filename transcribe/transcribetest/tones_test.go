package transcribetest_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

// requireWordsNear checks words and their times against want, within tol.
func requireWordsNear(t *testing.T, want, got []transcribetest.TimedWord, tol time.Duration) {
	t.Helper()
	require.Len(t, got, len(want), "got %v", got)
	for i := range want {
		require.Equal(t, want[i].Text, got[i].Text, "word %d", i)
		require.InDelta(t, want[i].Start, got[i].Start, float64(tol), "start of %q: want %v got %v", want[i].Text, want[i].Start, got[i].Start)
		require.InDelta(t, want[i].End, got[i].End, float64(tol), "end of %q: want %v got %v", want[i].Text, want[i].End, got[i].End)
	}
}

func TestSynthesizeDetectRoundTrip(t *testing.T) {
	t.Parallel()
	// Every vocabulary word once, neighbours in frequency next to each
	// other in time, so confusing adjacent tones would show.
	words := transcribetest.Layout(250*time.Millisecond, transcribetest.Vocabulary...)
	for _, rate := range []int{16000, 48000} {
		pcm, err := transcribetest.Synthesize(words, rate)
		require.NoError(t, err)
		require.Len(t, pcm, int(words[len(words)-1].End.Seconds()*float64(rate)))
		det, err := transcribetest.NewDetector(rate)
		require.NoError(t, err)
		requireWordsNear(t, words, det.Detect(pcm), 10*time.Millisecond)
	}
}

func TestSynthesizeRejectsBadInput(t *testing.T) {
	t.Parallel()
	_, err := transcribetest.Synthesize([]transcribetest.TimedWord{{Text: "hello", Start: 0, End: time.Second}}, 16000)
	require.ErrorContains(t, err, "not in Vocabulary")
	_, err = transcribetest.Synthesize([]transcribetest.TimedWord{{Text: "alpha", Start: time.Second, End: time.Second}}, 16000)
	require.ErrorContains(t, err, "start < end")
	_, err = transcribetest.Synthesize(nil, 4000)
	require.ErrorContains(t, err, "too low")
}

func TestDetectHearsNothingInSilenceAndNoise(t *testing.T) {
	t.Parallel()
	det, err := transcribetest.NewDetector(16000)
	require.NoError(t, err)
	require.Empty(t, det.Detect(make([]int16, 16000)))
	// Loud white-ish noise has energy but no pure tone.
	noise := make([]int16, 16000)
	x := uint32(1)
	for i := range noise {
		x = x*1664525 + 1013904223
		noise[i] = int16(x >> 16)
	}
	require.Empty(t, det.Detect(noise))
}

func TestWAVRoundTrip(t *testing.T) {
	t.Parallel()
	pcm := []int16{0, 1, -1, 32767, -32768, 1234}
	got, rate, err := transcribetest.DecodeWAV(transcribetest.EncodeWAV(pcm, 16000))
	require.NoError(t, err)
	require.Equal(t, 16000, rate)
	require.Equal(t, pcm, got)
	_, _, err = transcribetest.DecodeWAV([]byte("OggS not a wav file at all"))
	require.Error(t, err)
}

func BenchmarkDetect(b *testing.B) {
	words := transcribetest.Layout(0, "alpha", "bravo", "charlie", "delta")
	pcm, err := transcribetest.Synthesize(words, 16000)
	require.NoError(b, err)
	det, err := transcribetest.NewDetector(16000)
	require.NoError(b, err)
	det.Detect(pcm) // size the detector's buffers once
	b.ReportAllocs()
	b.SetBytes(int64(2 * len(pcm)))
	for b.Loop() {
		if len(det.Detect(pcm)) != len(words) {
			b.Fatal("wrong words")
		}
	}
}
