package transcribetest_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

func verboseForm(audio []byte) form {
	return form{file: audio, model: "whisper-1", format: "verbose_json", granularities: []string{"word", "segment"}}
}

func TestServerLies(t *testing.T) {
	t.Parallel()
	audio := toneWAV(t, 16000, twoUtterances(), 4*time.Second)
	for name, tc := range map[string]struct {
		lie   transcribetest.Lie
		check func(t *testing.T, raw []byte)
	}{
		"truncated": {transcribetest.LieTruncated, func(t *testing.T, raw []byte) {
			require.False(t, json.Valid(raw), string(raw))
			require.Contains(t, string(raw), `"text":"alpha bravo xray five"`, "a true answer, cut")
		}},
		"outside the audio": {transcribetest.LieOutsideAudio, func(t *testing.T, raw []byte) {
			var v verbose
			require.NoError(t, json.Unmarshal(raw, &v))
			require.Greater(t, v.Words[len(v.Words)-1].Start, 4.0)
			require.Greater(t, v.Segments[len(v.Segments)-1].End, 4.0)
			require.Less(t, v.Words[0].End, 4.0, "only the last one lies")
		}},
		"backwards": {transcribetest.LieBackwards, func(t *testing.T, raw []byte) {
			var v verbose
			require.NoError(t, json.Unmarshal(raw, &v))
			require.Greater(t, v.Words[0].Start, v.Words[1].Start)
			require.Greater(t, v.Segments[0].Start, v.Segments[1].Start)
		}},
		"empty": {transcribetest.LieEmpty, func(t *testing.T, raw []byte) {
			var v verbose
			require.NoError(t, json.Unmarshal(raw, &v))
			require.Empty(t, v.Text)
			require.Empty(t, v.Words)
			require.Empty(t, v.Segments)
			require.JSONEq(t, "4", string(v.Duration))
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, transcribetest.Options{Lie: tc.lie, LieFirst: 1})
			resp, raw := b.post(t, "/v1/audio/transcriptions", verboseForm(audio))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			tc.check(t, raw)
			// Then the truth.
			resp, raw = b.post(t, "/v1/audio/transcriptions", verboseForm(audio))
			require.Equal(t, http.StatusOK, resp.StatusCode)
			var v verbose
			require.NoError(t, json.Unmarshal(raw, &v))
			require.Equal(t, "alpha bravo xray five", v.Text)
			require.Len(t, v.Words, 4)
			require.Less(t, v.Words[0].Start, v.Words[1].Start)
		})
	}
}

func TestServerLiesAfterFailuresCountAnswersOnly(t *testing.T) {
	t.Parallel()
	audio := toneWAV(t, 16000, twoUtterances(), 4*time.Second)
	b := setup(t, transcribetest.Options{FailFirst: 1, Lie: transcribetest.LieTruncated, LieFirst: 1})
	resp, _ := b.post(t, "/v1/audio/transcriptions", verboseForm(audio))
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	_, raw := b.post(t, "/v1/audio/transcriptions", verboseForm(audio))
	require.False(t, json.Valid(raw))
	_, raw = b.post(t, "/v1/audio/transcriptions", verboseForm(audio))
	require.True(t, json.Valid(raw))
}

func TestServerDelay(t *testing.T) {
	t.Parallel()
	audio := toneWAV(t, 16000, twoUtterances(), 4*time.Second)

	const delay = 150 * time.Millisecond
	b := setup(t, transcribetest.Options{Delay: delay})
	began := time.Now()
	resp, _ := b.post(t, "/v1/audio/transcriptions", verboseForm(audio))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.GreaterOrEqual(t, time.Since(began), delay)

	// Only the first DelayFirst: a client that gives up on it is not kept
	// waiting; the next request is answered at once (else it would wait a
	// minute).
	b = setup(t, transcribetest.Options{Delay: time.Minute, DelayFirst: 1})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "audio.wav")
	require.NoError(t, err)
	_, err = fw.Write(audio)
	require.NoError(t, err)
	require.NoError(t, mw.WriteField("model", "whisper-1"))
	require.NoError(t, mw.Close())
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.srv.BaseURL()+"/audio/transcriptions", &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	_, err = http.DefaultClient.Do(req)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	resp, _ = b.post(t, "/v1/audio/transcriptions", verboseForm(audio))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, 2, b.srv.Requests())
}

type diarized struct {
	Task     string  `json:"task"`
	Duration float64 `json:"duration"`
	Text     string  `json:"text"`
	Segments []struct {
		Type, ID, Text, Speaker string
		Start, End              float64
	} `json:"segments"`
}

func diarizedForm(audio []byte, extra ...[2]string) form {
	return form{file: audio, model: "gpt-4o-transcribe-diarize", format: "diarized_json", extra: extra}
}

func dataURL(wav []byte) string {
	return "data:audio/wav;base64," + base64.StdEncoding.EncodeToString(wav)
}

func TestServerDiarizedJSON(t *testing.T) {
	t.Parallel()
	// Low voice (alpha bravo), high voice (xray five), low again, with no
	// pause between the first two turns: the change of voice alone cuts.
	words := append(transcribetest.Layout(500*time.Millisecond, "alpha", "bravo", "xray", "five"),
		transcribetest.Layout(3*time.Second, "charlie")...)
	audio := toneWAV(t, 16000, words, 4*time.Second)
	b := setup(t, transcribetest.Options{})

	resp, raw := b.post(t, "/v1/audio/transcriptions", diarizedForm(audio))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	var d diarized
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Equal(t, "alpha bravo xray five charlie", d.Text)
	require.InDelta(t, 4.0, d.Duration, 0)
	require.Len(t, d.Segments, 3)
	for i, want := range []struct{ text, speaker string }{{"alpha bravo", "A"}, {"xray five", "B"}, {"charlie", "A"}} {
		require.Equal(t, "transcript.text.segment", d.Segments[i].Type)
		require.Equal(t, " "+want.text, d.Segments[i].Text)
		require.Equal(t, want.speaker, d.Segments[i].Speaker)
	}
	require.InDelta(t, 1.3, d.Segments[1].Start, 0.02)
	require.InDelta(t, 3.0, d.Segments[2].Start, 0.02)

	// Known speakers: each clip's voice gets its name.
	high := toneWAV(t, 16000, transcribetest.Layout(0, "zulu", "zero", "one", "two", "three", "four"), 3*time.Second)
	low := toneWAV(t, 16000, transcribetest.Layout(0, "golf", "hotel", "india", "kilo", "lima", "mike"), 3*time.Second)
	resp, raw = b.post(t, "/v1/audio/transcriptions", diarizedForm(audio,
		[2]string{"known_speaker_names[]", "Zoe"}, [2]string{"known_speaker_names[]", "Leo"},
		[2]string{"known_speaker_references[]", dataURL(high)}, [2]string{"known_speaker_references[]", dataURL(low)}))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	require.NoError(t, json.Unmarshal(raw, &d))
	require.Equal(t, []string{"Leo", "Zoe", "Leo"}, []string{d.Segments[0].Speaker, d.Segments[1].Speaker, d.Segments[2].Speaker})
	got := b.srv.Received()[1]
	require.Equal(t, []string{"Zoe", "Leo"}, got.KnownSpeakerNames)
	require.Equal(t, 2, got.KnownSpeakerReferences)
}

func TestServerDiarizedJSONRefusals(t *testing.T) {
	t.Parallel()
	short := toneWAV(t, 16000, twoUtterances(), 4*time.Second)
	long := toneWAV(t, 16000, twoUtterances(), 31*time.Second)
	clip := dataURL(toneWAV(t, 16000, transcribetest.Layout(0, "alpha", "bravo"), 3*time.Second))
	b := setup(t, transcribetest.Options{})
	for name, tc := range map[string]struct {
		f    form
		want string
	}{
		"long audio without chunking": {diarizedForm(long), "chunking_strategy is required"},
		"word granularity":            {form{file: short, model: "m", format: "diarized_json", granularities: []string{"word"}}, "timestamp_granularities"},
		"prompt":                      {diarizedForm(short, [2]string{"prompt", "hello"}), "prompt"},
		"names without clips":         {diarizedForm(short, [2]string{"known_speaker_names[]", "Ann"}), "pair up"},
		"clip not a data URL":         {diarizedForm(short, [2]string{"known_speaker_names[]", "Ann"}, [2]string{"known_speaker_references[]", "https://x/a.wav"}), "data URL"},
		"clip too short": {diarizedForm(short, [2]string{"known_speaker_names[]", "Ann"},
			[2]string{"known_speaker_references[]", dataURL(toneWAV(t, 16000, transcribetest.Layout(0, "alpha"), time.Second))}), "lasts"},
		"five known speakers": {diarizedForm(short,
			[2]string{"known_speaker_names[]", "A"}, [2]string{"known_speaker_names[]", "B"}, [2]string{"known_speaker_names[]", "C"},
			[2]string{"known_speaker_names[]", "D"}, [2]string{"known_speaker_names[]", "E"},
			[2]string{"known_speaker_references[]", clip}, [2]string{"known_speaker_references[]", clip}, [2]string{"known_speaker_references[]", clip},
			[2]string{"known_speaker_references[]", clip}, [2]string{"known_speaker_references[]", clip}), "at most 4"},
	} {
		resp, raw := b.post(t, "/v1/audio/transcriptions", tc.f)
		require.Equal(t, http.StatusBadRequest, resp.StatusCode, name)
		require.Contains(t, string(raw), tc.want, name)
	}
	resp, raw := b.post(t, "/v1/audio/transcriptions", diarizedForm(long, [2]string{"chunking_strategy", "auto"}))
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
}

func TestServerSpeed(t *testing.T) {
	t.Parallel()
	audio := toneWAV(t, 16000, twoUtterances(), 4*time.Second)
	// 4 s of audio at 4× real time: each answer takes a second, and two
	// requests at once are served side by side, not one after the other.
	b := setup(t, transcribetest.Options{Speed: 4})
	const each = time.Second
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, err := mw.CreateFormFile("file", "audio.wav")
	require.NoError(t, err)
	_, err = fw.Write(audio)
	require.NoError(t, err)
	require.NoError(t, mw.WriteField("model", "whisper-1"))
	require.NoError(t, mw.Close())
	// The goroutines only report: require must run on the test's own.
	send := func() (time.Duration, error) {
		start := time.Now()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.BaseURL()+"/audio/transcriptions",
			bytes.NewReader(body.Bytes()))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !bytes.Contains(raw, []byte("alpha bravo xray five")) {
			return 0, fmt.Errorf("status %d, %s, %v", resp.StatusCode, raw, err)
		}
		return time.Since(start), nil
	}
	began := time.Now()
	type result struct {
		took time.Duration
		err  error
	}
	took := make(chan result, 2)
	for range 2 {
		go func() {
			d, err := send()
			took <- result{d, err}
		}()
	}
	for range 2 {
		r := <-took
		require.NoError(t, r.err)
		require.GreaterOrEqual(t, r.took, each, "an answer came before audio/Speed")
	}
	require.Less(t, time.Since(began), 2*each-100*time.Millisecond, "the two requests were served one after the other")

	// Without Speed the same audio is answered at once.
	b = setup(t, transcribetest.Options{})
	began = time.Now()
	resp, _ := b.post(t, "/v1/audio/transcriptions", verboseForm(audio))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Less(t, time.Since(began), each)
}
