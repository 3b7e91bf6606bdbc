package transcribetest_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

type testBundle struct {
	srv *transcribetest.Server
}

func setup(t *testing.T, opts transcribetest.Options) *testBundle {
	t.Helper()
	srv := transcribetest.NewServer(opts)
	t.Cleanup(srv.Close)
	return &testBundle{srv: srv}
}

type form struct {
	file          []byte
	filename      string
	model         string
	language      string
	format        string
	granularities []string
	key           string
	// extra fields, in order (repeated names allowed).
	extra [][2]string
}

// post sends a hand-built multipart request, so these tests pin the wire
// format independently of any client library.
func (b *testBundle) post(t *testing.T, path string, f form) (*http.Response, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if f.file != nil {
		if f.filename == "" {
			f.filename = "audio.wav"
		}
		fw, err := mw.CreateFormFile("file", f.filename)
		require.NoError(t, err)
		_, err = fw.Write(f.file)
		require.NoError(t, err)
	}
	for k, v := range map[string]string{"model": f.model, "language": f.language, "response_format": f.format} {
		if v != "" {
			require.NoError(t, mw.WriteField(k, v))
		}
	}
	for _, g := range f.granularities {
		require.NoError(t, mw.WriteField("timestamp_granularities[]", g))
	}
	for _, e := range f.extra {
		require.NoError(t, mw.WriteField(e[0], e[1]))
	}
	require.NoError(t, mw.Close())
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, b.srv.URL()+path, &body)
	require.NoError(t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if f.key != "" {
		req.Header.Set("Authorization", "Bearer "+f.key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, raw
}

// verbose is the OpenAI verbose_json shape, loose enough for every quirk.
type verbose struct {
	Language string          `json:"language"`
	Duration json.RawMessage `json:"duration"`
	Text     string          `json:"text"`
	Segments []struct {
		Start, End   float64
		Text         string
		NoSpeechProb *float64 `json:"no_speech_prob"`
		Words        []struct {
			Word       string
			Start, End float64
		}
	} `json:"segments"`
	Words []struct {
		Word       string
		Start, End float64
	} `json:"words"`
}

func toneWAV(t *testing.T, rate int, words []transcribetest.TimedWord, total time.Duration) []byte {
	t.Helper()
	pcm, err := transcribetest.Synthesize(words, rate)
	require.NoError(t, err)
	pad := int(total.Seconds()*float64(rate)) - len(pcm)
	return transcribetest.EncodeWAV(append(pcm, make([]int16, max(pad, 0))...), rate)
}

func twoUtterances() []transcribetest.TimedWord {
	return append(transcribetest.Layout(500*time.Millisecond, "alpha", "bravo"),
		transcribetest.Layout(2500*time.Millisecond, "xray", "five")...)
}

func TestServerOpenAIShape(t *testing.T) {
	t.Parallel()
	b := setup(t, transcribetest.Options{APIKey: "sekret"})
	audio := toneWAV(t, 16000, twoUtterances(), 4*time.Second)
	resp, raw := b.post(t, "/v1/audio/transcriptions", form{
		file: audio, model: "whisper-1", language: "en", format: "verbose_json",
		granularities: []string{"word", "segment"}, key: "sekret",
	})
	require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
	var v verbose
	require.NoError(t, json.Unmarshal(raw, &v))
	require.Equal(t, "en", v.Language)
	require.JSONEq(t, "4", string(v.Duration))
	require.Equal(t, "alpha bravo xray five", v.Text)
	require.Len(t, v.Words, 4)
	require.Equal(t, "xray", v.Words[2].Word)
	require.InDelta(t, 2.5, v.Words[2].Start, 0.02)
	require.InDelta(t, 2.8, v.Words[2].End, 0.02)
	// The pause of 1.3 s splits two segments.
	require.Len(t, v.Segments, 2)
	require.Equal(t, " alpha bravo", v.Segments[0].Text)
	require.InDelta(t, 0.5, v.Segments[0].Start, 0.02)
	require.InDelta(t, 1.2, v.Segments[0].End, 0.02)
	require.NotNil(t, v.Segments[0].NoSpeechProb)

	got := b.srv.Received()
	require.Len(t, got, 1)
	require.Equal(t, transcribetest.Received{
		Model: "whisper-1", Language: "en", ResponseFormat: "verbose_json",
		Granularities: []string{"word", "segment"}, Filename: "audio.wav",
		ContentType: "application/octet-stream", Size: len(audio), Heard: "alpha bravo xray five",
	}, got[0], "what was sent, and what the double heard in it")
	require.Equal(t, 1, b.srv.Requests())

	// Words only: no segments, as OpenAI does.
	_, raw = b.post(t, "/v1/audio/transcriptions", form{file: audio, model: "m", format: "verbose_json", granularities: []string{"word"}, key: "sekret"})
	v = verbose{}
	require.NoError(t, json.Unmarshal(raw, &v))
	require.Empty(t, v.Segments)
	require.Len(t, v.Words, 4)
	require.Equal(t, "english", v.Language, "detected language when none is asked for")

	// Plain json and text.
	_, raw = b.post(t, "/v1/audio/transcriptions", form{file: audio, model: "m", key: "sekret"})
	require.JSONEq(t, `{"text":"alpha bravo xray five"}`, string(raw))
	_, raw = b.post(t, "/v1/audio/transcriptions", form{file: audio, model: "m", format: "text", key: "sekret"})
	require.Equal(t, "alpha bravo xray five\n", string(raw))
}

func TestServerQuirks(t *testing.T) {
	t.Parallel()
	audio := toneWAV(t, 16000, twoUtterances(), 4*time.Second)

	t.Run("vLLM", func(t *testing.T) {
		t.Parallel()
		b := setup(t, transcribetest.Options{Quirk: transcribetest.QuirkVLLM})
		_, raw := b.post(t, "/v1/audio/transcriptions", form{file: audio, model: "m", format: "verbose_json", granularities: []string{"word", "segment"}})
		var v verbose
		require.NoError(t, json.Unmarshal(raw, &v))
		require.Equal(t, `"4.00"`, string(v.Duration))
		require.Empty(t, v.Words)
		require.Len(t, v.Segments, 2)
		require.Nil(t, v.Segments[1].NoSpeechProb)
		require.Contains(t, string(raw), `"no_speech_prob":null`)
	})
	t.Run("whisper.cpp", func(t *testing.T) {
		t.Parallel()
		b := setup(t, transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/inference"})
		_, raw := b.post(t, "/inference", form{file: audio, format: "verbose_json"})
		var v verbose
		require.NoError(t, json.Unmarshal(raw, &v))
		require.Empty(t, v.Words)
		require.Len(t, v.Segments, 2)
		var pieces []string
		for _, w := range v.Segments[0].Words {
			pieces = append(pieces, w.Word)
		}
		require.Equal(t, []string{" al", "pha", " br", "avo"}, pieces)
		require.InDelta(t, 0.5, v.Segments[0].Words[0].Start, 0.02)
		require.Equal(t, v.Segments[0].Words[0].End, v.Segments[0].Words[1].Start)
	})
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	audio := toneWAV(t, 16000, transcribetest.Layout(0, "alpha"), time.Second)
	b := setup(t, transcribetest.Options{APIKey: "k"})
	for name, tc := range map[string]struct {
		f      form
		status int
	}{
		"wrong key":    {form{file: audio, model: "m", key: "nope"}, http.StatusUnauthorized},
		"no key":       {form{file: audio, model: "m"}, http.StatusUnauthorized},
		"empty file":   {form{file: []byte{}, model: "m", key: "k"}, http.StatusBadRequest},
		"no file":      {form{model: "m", key: "k"}, http.StatusBadRequest},
		"no model":     {form{file: audio, key: "k"}, http.StatusBadRequest},
		"not audio":    {form{file: []byte("OggS....garbage"), model: "m", key: "k"}, http.StatusUnsupportedMediaType},
		"granularity":  {form{file: audio, model: "m", key: "k", granularities: []string{"word"}}, http.StatusBadRequest},
		"srt unknown":  {form{file: audio, model: "m", key: "k", format: "srt"}, http.StatusBadRequest},
		"right answer": {form{file: audio, model: "m", key: "k"}, http.StatusOK},
	} {
		resp, raw := b.post(t, "/v1/audio/transcriptions", tc.f)
		require.Equal(t, tc.status, resp.StatusCode, "%s: %s", name, raw)
		if tc.status != http.StatusOK {
			var e struct{ Error struct{ Message string } }
			require.NoError(t, json.Unmarshal(raw, &e), name)
			require.NotEmpty(t, e.Error.Message, name)
		}
	}
}

func TestServerFailFirst(t *testing.T) {
	t.Parallel()
	b := setup(t, transcribetest.Options{FailFirst: 2, FailStatus: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond})
	audio := toneWAV(t, 16000, transcribetest.Layout(0, "alpha"), time.Second)
	for i := range 2 {
		resp, _ := b.post(t, "/v1/audio/transcriptions", form{file: audio, model: "m"})
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "request %d", i)
		require.Equal(t, "2", resp.Header.Get("Retry-After"))
	}
	resp, raw := b.post(t, "/v1/audio/transcriptions", form{file: audio, model: "m"})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.JSONEq(t, `{"text":"alpha"}`, string(raw))
	require.Equal(t, 3, b.srv.Requests())
}

// TestMeetingFixtures is the contract of testdata/meeting: each speaker's
// Ogg Opus file, decoded at 16 kHz by a reference decoder and sent to the
// double, yields exactly that speaker's words in script.json, each time
// within 60 ms.
func TestMeetingFixtures(t *testing.T) {
	t.Parallel()
	opusdec, err := exec.LookPath("opusdec")
	require.NoError(t, err, "install opus-tools (apt-get install opus-tools)")
	dir := filepath.Join("..", "..", "testdata", "meeting")
	script, err := transcribetest.ReadScript(filepath.Join(dir, "script.json"))
	require.NoError(t, err)
	require.Equal(t, []string{"alice", "bob"}, script.Speakers())
	b := setup(t, transcribetest.Options{})
	for _, speaker := range script.Speakers() {
		wav := filepath.Join(t.TempDir(), speaker+".wav")
		out, err := exec.CommandContext(t.Context(), opusdec, "--quiet", "--rate", "16000", filepath.Join(dir, speaker+".opus"), wav).CombinedOutput()
		require.NoError(t, err, string(out))
		audio, err := os.ReadFile(wav)
		require.NoError(t, err)
		resp, raw := b.post(t, "/v1/audio/transcriptions", form{file: audio, model: "whisper-1", format: "verbose_json", granularities: []string{"word", "segment"}})
		require.Equal(t, http.StatusOK, resp.StatusCode, string(raw))
		var v verbose
		require.NoError(t, json.Unmarshal(raw, &v))
		require.JSONEq(t, "9", string(v.Duration), speaker)
		got := make([]transcribetest.TimedWord, len(v.Words))
		for i, w := range v.Words {
			got[i] = transcribetest.TimedWord{Text: w.Word, Start: transcribetest.FromSeconds(w.Start), End: transcribetest.FromSeconds(w.End)}
		}
		requireWordsNear(t, script.Words(speaker), got, 60*time.Millisecond)
		// One segment per utterance: utterances are seconds apart.
		require.Len(t, v.Segments, 2, speaker)
	}
}
