package transcribetest_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

// aliceOgg is testdata/meeting/alice.opus as opusenc wrote it, and
// alice's words on its timeline.
func aliceOgg(t *testing.T) ([]byte, []transcribetest.TimedWord) {
	t.Helper()
	dir := filepath.Join("..", "..", "testdata", "meeting")
	b, err := os.ReadFile(filepath.Join(dir, "alice.opus"))
	require.NoError(t, err)
	script, err := transcribetest.ReadScript(filepath.Join(dir, "script.json"))
	require.NoError(t, err)
	return b, script.Words("alice")
}

// shifted moves words by -by and keeps those that still start at or after 0.
func shifted(words []transcribetest.TimedWord, by time.Duration) []transcribetest.TimedWord {
	var out []transcribetest.TimedWord
	for _, w := range words {
		if w.Start >= by {
			out = append(out, transcribetest.TimedWord{Text: w.Text, Start: w.Start - by, End: w.End - by})
		}
	}
	return out
}

func TestDecodeAudio(t *testing.T) {
	t.Parallel()
	ogg, words := aliceOgg(t)
	pcm, rate, err := transcribetest.DecodeAudio(ogg)
	require.NoError(t, err)
	require.Equal(t, transcribetest.OggOpusRate, rate)
	require.Len(t, pcm, 9*rate, "pre-skip and end trimming honoured")
	det, err := transcribetest.NewDetector(rate)
	require.NoError(t, err)
	requireWordsNear(t, words, det.Detect(pcm), 30*time.Millisecond)

	wav := transcribetest.EncodeWAV(pcm, rate)
	again, rate, err := transcribetest.DecodeAudio(wav)
	require.NoError(t, err)
	require.Equal(t, 16000, rate)
	require.Equal(t, pcm, again)

	_, _, err = transcribetest.DecodeAudio([]byte("OggS but nothing Ogg about it"))
	require.ErrorContains(t, err, "not a readable Ogg Opus file")
	_, _, err = transcribetest.DecodeAudio([]byte("neither"))
	require.Error(t, err)
}

// TestCutOggOpus re-muxes stretches of alice's file as Greffier writes Ogg
// Opus: her words come back where the cut's start says.
func TestCutOggOpus(t *testing.T) {
	t.Parallel()
	ogg, words := aliceOgg(t)
	det, err := transcribetest.NewDetector(transcribetest.OggOpusRate)
	require.NoError(t, err)
	for _, tc := range []struct{ from, to time.Duration }{
		{0, 0},
		{3 * time.Second, 0},
		{500 * time.Millisecond, 3 * time.Second},
	} {
		cut, start, err := transcribetest.CutOggOpus(ogg, tc.from, tc.to)
		require.NoError(t, err)
		// Within a packet of from; from the start, the cut's longer pre-skip
		// (3840 against alice's 312) hides 73.5 ms of her file.
		first := max(tc.from, time.Duration(transcribetest.GreffierPreSkip-312)*time.Second/48000)
		require.GreaterOrEqual(t, start, first)
		require.Less(t, start, first+20*time.Millisecond)
		pcm, rate, err := transcribetest.DecodeAudio(cut)
		require.NoError(t, err)
		end := tc.to
		if end == 0 {
			end = 9 * time.Second
		}
		length := time.Duration(len(pcm)) * time.Second / time.Duration(rate)
		require.InDelta(t, end-start, length, float64(20*time.Millisecond), "%v-%v", tc.from, tc.to)
		var want []transcribetest.TimedWord
		for _, w := range shifted(words, start) {
			if w.End <= length {
				want = append(want, w)
			}
		}
		require.NotEmpty(t, want)
		requireWordsNear(t, want, det.Detect(pcm), 30*time.Millisecond)
	}
	_, _, err = transcribetest.CutOggOpus(ogg, 10*time.Second, 0)
	require.Error(t, err)
}

// TestServerReadsOggOpus sends alice's file as it is: the OpenAI-shaped
// doubles hear her words, whisper.cpp's refuses it as the real one does.
func TestServerReadsOggOpus(t *testing.T) {
	t.Parallel()
	ogg, words := aliceOgg(t)
	for name, opts := range map[string]transcribetest.Options{
		"openai": {},
		"vLLM":   {Quirk: transcribetest.QuirkVLLM},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, opts)
			resp, raw := b.post(t, "/v1/audio/transcriptions", form{file: ogg, filename: "alice.ogg", model: "m", format: "verbose_json", granularities: []string{"word", "segment"}})
			require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
			var v verbose
			require.NoError(t, json.Unmarshal(raw, &v))
			require.Equal(t, "alpha bravo charlie delta india juliett kilo", v.Text)
			require.Contains(t, string(v.Duration), "9")
			require.Len(t, v.Segments, 2)
			require.InDelta(t, words[0].Start.Seconds(), v.Segments[0].Start, 0.03)
			require.InDelta(t, words[4].Start.Seconds(), v.Segments[1].Start, 0.03)
		})
	}
	t.Run("whisper.cpp", func(t *testing.T) {
		t.Parallel()
		b := setup(t, transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/inference"})
		resp, raw := b.post(t, "/inference", form{file: ogg, filename: "alice.ogg", format: "verbose_json"})
		require.Equal(t, http.StatusOK, resp.StatusCode, "whisper.cpp fails with 200")
		require.JSONEq(t, transcribetest.WhisperCppReadError, string(raw))
		pcm, rate, err := transcribetest.DecodeAudio(ogg)
		require.NoError(t, err)
		resp, raw = b.post(t, "/inference", form{file: transcribetest.EncodeWAV(pcm, rate), format: "verbose_json"})
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.NotContains(t, string(raw), "error", "the same audio as WAV is read")
	})
}
