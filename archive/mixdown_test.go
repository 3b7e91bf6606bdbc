package archive

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// decodeFLAC decodes a FLAC with ffmpeg (an independent decoder, which
// also checks the stream's MD5 when it is set) to 16 kHz mono PCM.
func decodeFLAC(t testing.TB, path string) []int16 {
	t.Helper()
	wav := filepath.Join(t.TempDir(), "mix.wav")
	runTool(t, "ffmpeg", "-v", "error", "-xerror", "-i", path, "-ar", "16000", "-c:a", "pcm_s16le", wav)
	f, err := os.ReadFile(wav)
	require.NoError(t, err)
	pcm, rate, err := audio.ReadWAV(bytes.NewReader(f))
	require.NoError(t, err)
	require.Equal(t, 16000, rate)
	return pcm
}

func TestMixdownPutsEverySpeakerAtTheirMeetingTimes(t *testing.T) {
	t.Parallel()
	m := newMeeting(t)
	path := filepath.Join(t.TempDir(), "mix.flac")
	f, err := os.Create(path)
	require.NoError(t, err)
	st, err := Mixdown(context.Background(), f, m.tracks)
	require.NoError(t, err)
	require.NoError(t, f.Close())

	require.Equal(t, 2, st.Speakers)
	require.Equal(t, 3, st.Segments)
	require.Zero(t, st.BadPackets)
	require.Greater(t, st.Packets, int64(850))
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, fi.Size(), st.Bytes)
	for i, mt := range m.mem {
		require.EqualValues(t, 1, mt.opens.Load(), "segment %d opened once", i)
		require.EqualValues(t, 1, mt.closes.Load(), "segment %d closed", i)
	}

	p := ffprobe(t, path)
	require.Len(t, p.Streams, 1)
	require.Equal(t, "flac", p.Streams[0].CodecName)
	require.Equal(t, 1, p.Streams[0].Channels)

	pcm := decodeFLAC(t, path)
	require.InDelta(t, st.Duration.Seconds(), float64(len(pcm))/16000, 0.001)
	aliceEnd := time.Duration(aliceRejoinMS)*time.Millisecond + 9*time.Second - aliceSplit*20*time.Millisecond
	require.InDelta(t, aliceEnd.Seconds(), st.Duration.Seconds(), 0.03)

	det, err := transcribetest.NewDetector(16000)
	require.NoError(t, err)
	// Alice's "charlie" and "delta" overlap Bob's "echo" and "foxtrot"
	// (2.7-3.5 s on the meeting clock): two tones in one frame are no
	// single word to the detector, so words there are checked by their
	// tones below; every other word must be heard in its place.
	want := merged(m.want["alice"], m.want["bob"])
	overlap := [2]time.Duration{2700 * time.Millisecond, 3500 * time.Millisecond}
	requireWordsAt(t, outside(want, overlap), outside(det.Detect(pcm), overlap), 20*time.Millisecond)

	// In the overlap both voices sound at once: charlie (500 Hz, Alice)
	// and echo (700 Hz, Bob) share 2.8-3.0 s, each far above a tone nobody
	// says there (1000 Hz).
	win := pcm[16000*2820/1000 : 16000*2980/1000]
	silent := goertzel(win, 1000)
	for _, word := range []string{"charlie", "echo"} {
		hz, ok := transcribetest.Frequency(word)
		require.True(t, ok)
		require.Greater(t, goertzel(win, hz), 1000*silent, "%s (%v Hz) in the overlap", word, hz)
	}
	// The limiter kept the sum of two 0.3 full-scale tones from clipping.
	for _, v := range pcm {
		require.Less(t, v, int16(32767))
		require.Greater(t, v, int16(-32768))
	}
}

// outside returns the words that do not touch the stretch [from, to).
func outside(words []transcribetest.TimedWord, span [2]time.Duration) []transcribetest.TimedWord {
	var out []transcribetest.TimedWord
	for _, w := range words {
		if w.End <= span[0] || w.Start >= span[1] {
			out = append(out, w)
		}
	}
	return out
}

// goertzel returns the power of samples (16 kHz) at freq, per sample².
func goertzel(samples []int16, freq float64) float64 {
	c := 2 * math.Cos(2*math.Pi*freq/16000)
	var s1, s2 float64
	for _, x := range samples {
		s0 := float64(x) + c*s1 - s2
		s2, s1 = s1, s0
	}
	n := float64(len(samples))
	return (s1*s1 + s2*s2 - c*s1*s2) / (n * n)
}

// One speaker's segments mixed to the meeting's length give a file that
// lines up with the meeting: silence before, between and after their
// speech, and the words where they were said on the meeting clock.
func TestMixdownToKeepsOneSpeakersTimingOverTheWholeMeeting(t *testing.T) {
	t.Parallel()
	m := newMeeting(t)
	var alice []Track
	for _, tr := range m.tracks {
		if tr.Identity == "alice" {
			alice = append(alice, tr)
		}
	}
	const meetingLength = 20 * time.Second
	path := filepath.Join(t.TempDir(), "alice.flac")
	f, err := os.Create(path)
	require.NoError(t, err)
	st, err := MixdownTo(context.Background(), f, alice, meetingLength)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	require.Equal(t, 1, st.Speakers)
	require.Equal(t, meetingLength, st.Duration)

	p := ffprobe(t, path)
	dur, err := strconv.ParseFloat(p.Format.Duration, 64)
	require.NoError(t, err)
	require.InDelta(t, meetingLength.Seconds(), dur, 0.001, "ffprobe: as long as the meeting")

	pcm := decodeFLAC(t, path)
	require.Len(t, pcm, int(meetingLength.Seconds()*16000))
	det, err := transcribetest.NewDetector(16000)
	require.NoError(t, err)
	requireWordsAt(t, m.want["alice"], det.Detect(pcm), 20*time.Millisecond)
	// Nothing sounds after her last segment ends.
	aliceEnd := time.Duration(aliceRejoinMS)*time.Millisecond + 9*time.Second - aliceSplit*20*time.Millisecond
	for _, v := range pcm[int(aliceEnd.Seconds()*16000)+160:] {
		require.Zero(t, v)
	}
}
