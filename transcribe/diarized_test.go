package transcribe_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// twoVoices is alpha bravo (low voice), xray five (high voice) straight
// after, then charlie (low) after a pause, padded to total.
func twoVoices(t *testing.T, total time.Duration) []byte {
	t.Helper()
	words := append(transcribetest.Layout(500*time.Millisecond, "alpha", "bravo", "xray", "five"),
		transcribetest.Layout(3*time.Second, "charlie")...)
	pcm, err := transcribetest.Synthesize(words, 16000)
	require.NoError(t, err)
	pcm = append(pcm, make([]int16, int(total.Seconds()*16000)-len(pcm))...)
	return transcribetest.EncodeWAV(pcm, 16000)
}

func voiceClip(t *testing.T, words ...string) []byte {
	t.Helper()
	pcm, err := transcribetest.Synthesize(transcribetest.Layout(0, words...), 16000)
	require.NoError(t, err)
	pcm = append(pcm, make([]int16, 3*16000-len(pcm))...)
	return transcribetest.EncodeWAV(pcm, 16000)
}

func TestDiarizedSpeakers(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, transcribetest.Options{APIKey: "sk"},
		transcribe.OpenAIConfig{Model: "gpt-4o-transcribe-diarize", APIKey: "sk", Diarized: true}, transcribe.GuardConfig{})
	audio := twoVoices(t, 4*time.Second)

	res, err := b.guard.Transcribe(t.Context(), transcribe.Request{Audio: audio, Language: "en", Prompt: "not for this model",
		Vocabulary: []string{"Greffier"}})
	require.NoError(t, err)
	require.Equal(t, "alpha bravo xray five charlie", res.Text)
	require.Equal(t, "en", res.Language)
	require.Equal(t, 4*time.Second, res.Duration)
	require.Len(t, res.Phrases, 3)
	for i, want := range []transcribe.Phrase{
		{Text: "alpha bravo", Start: 500 * time.Millisecond, End: 1200 * time.Millisecond, Speaker: "A"},
		{Text: "xray five", Start: 1300 * time.Millisecond, End: 2000 * time.Millisecond, Speaker: "B"},
		{Text: "charlie", Start: 3 * time.Second, End: 3300 * time.Millisecond, Speaker: "A"},
	} {
		got := res.Phrases[i]
		require.Equal(t, want.Text, got.Text)
		require.Equal(t, want.Speaker, got.Speaker)
		require.InDelta(t, want.Start, got.Start, float64(20*time.Millisecond))
		require.InDelta(t, want.End, got.End, float64(20*time.Millisecond))
	}
	require.True(t, res.WordsEstimated)
	require.Len(t, res.Words, 5)
	require.Equal(t, "xray", res.Words[2].Text)
	require.GreaterOrEqual(t, res.Words[2].Start, res.Phrases[1].Start)

	got := b.srv.Received()[0]
	require.Equal(t, "diarized_json", got.ResponseFormat)
	require.Equal(t, "gpt-4o-transcribe-diarize", got.Model)
	require.Empty(t, got.Granularities)
	require.Empty(t, got.Prompt, "the diarizing model takes no prompt: neither previous words nor vocabulary")
	require.Empty(t, got.ChunkingStrategy, "short audio needs no chunking")
	require.Equal(t, "audio.wav", got.Filename)
	require.Equal(t, "audio/wav", got.ContentType)
}

func TestDiarizedKnownSpeakersAndLongAudio(t *testing.T) {
	t.Parallel()
	b := setupGuard(t, transcribetest.Options{}, transcribe.OpenAIConfig{Diarized: true}, transcribe.GuardConfig{})
	res, err := b.guard.Transcribe(t.Context(), transcribe.Request{
		Audio: twoVoices(t, 40*time.Second),
		KnownSpeakers: []transcribe.KnownSpeaker{
			{Name: "Zoe", Audio: voiceClip(t, "zulu", "zero", "one", "two", "three", "four")},
			{Name: "Leo", Audio: voiceClip(t, "golf", "hotel", "india", "kilo", "lima", "mike")},
		},
	})
	require.NoError(t, err)
	speakers := make([]string, len(res.Phrases))
	for i, s := range res.Phrases {
		speakers[i] = s.Speaker
	}
	require.Equal(t, []string{"Leo", "Zoe", "Leo"}, speakers)
	got := b.srv.Received()[0]
	require.Equal(t, "auto", got.ChunkingStrategy, "over 30 s")
	require.Equal(t, []string{"Zoe", "Leo"}, got.KnownSpeakerNames)
	require.Equal(t, 2, got.KnownSpeakerReferences)

	_, err = b.guard.Transcribe(t.Context(), transcribe.Request{Audio: twoVoices(t, 4*time.Second),
		KnownSpeakers: make([]transcribe.KnownSpeaker, 5)})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	_, err = b.guard.Transcribe(t.Context(), transcribe.Request{Audio: twoVoices(t, 4*time.Second),
		KnownSpeakers: []transcribe.KnownSpeaker{{Name: "no clip"}}})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	require.Equal(t, 1, b.srv.Requests(), "invalid requests are not sent")
}

func TestDiarizedMisbehaviours(t *testing.T) {
	t.Parallel()
	audio := twoVoices(t, 4*time.Second)
	for name, tc := range map[string]struct {
		opts     transcribetest.Options
		requests int
	}{
		"429 then answers": {opts: transcribetest.Options{FailFirst: 1, FailStatus: 429, RetryAfter: time.Second}, requests: 2},
		"truncated once":   {opts: transcribetest.Options{Lie: transcribetest.LieTruncated, LieFirst: 1}, requests: 2},
		"backwards once":   {opts: transcribetest.Options{Lie: transcribetest.LieBackwards, LieFirst: 1}, requests: 2},
		"outside once":     {opts: transcribetest.Options{Lie: transcribetest.LieOutsideAudio, LieFirst: 1}, requests: 2},
		"empty once":       {opts: transcribetest.Options{Lie: transcribetest.LieEmpty, LieFirst: 1}, requests: 2},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setupGuard(t, tc.opts, transcribe.OpenAIConfig{Diarized: true}, transcribe.GuardConfig{})
			jobs := &asJobs{tr: b.guard, attempts: 8}
			res, err := jobs.Transcribe(t.Context(), transcribe.Request{Audio: audio, ExpectSpeech: true})
			require.NoError(t, err)
			require.Equal(t, "alpha bravo xray five charlie", res.Text)
			require.Len(t, res.Phrases, 3)
			require.Equal(t, tc.requests, b.srv.Requests())
			require.Equal(t, tc.requests, jobs.Calls(), "one request per call")
		})
	}
}

func TestDiarizedRefusedAnswer(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		status int
		body   string
		check  func(t *testing.T, err error)
	}{
		"segment without speaker": {200, `{"duration":4,"text":"a","segments":[{"start":0.5,"end":1,"text":"a"}]}`, func(t *testing.T, err error) {
			require.ErrorIs(t, err, transcribe.ErrBadAnswer)
		}},
		"model refuses the format": {400, `{"error":{"message":"response_format 'diarized_json' is not compatible with model 'whisper-1'","type":"invalid_request_error"}}`, func(t *testing.T, err error) {
			he, ok := errors.AsType[*transcribe.HTTPError](err)
			require.True(t, ok, "%v", err)
			require.Equal(t, 400, he.StatusCode)
			require.Contains(t, he.Message, "diarized_json")
			require.False(t, he.Temporary())
		}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: srv.URL + "/v1", Diarized: true})
			require.NoError(t, err)
			_, err = tr.Transcribe(t.Context(), transcribe.Request{Audio: twoVoices(t, 4*time.Second)})
			tc.check(t, err)
		})
	}
}
