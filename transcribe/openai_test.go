package transcribe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

type testBundle struct {
	srv *transcribetest.Server
	tr  *transcribe.OpenAI
}

// setup starts a double and a backend pointed at it; cfg's BaseURL and
// Path are filled in unless set.
func setup(t *testing.T, opts transcribetest.Options, cfg transcribe.OpenAIConfig) *testBundle {
	t.Helper()
	srv := transcribetest.NewServer(opts)
	t.Cleanup(srv.Close)
	if cfg.BaseURL == "" {
		cfg.BaseURL = srv.BaseURL()
	}
	tr, err := transcribe.NewOpenAI(cfg)
	require.NoError(t, err)
	return &testBundle{srv: srv, tr: tr}
}

// speech is two utterances, 1.3 s apart, in a 4 s, 16 kHz WAV.
func speech(t *testing.T) ([]transcribetest.TimedWord, []byte) {
	t.Helper()
	words := append(transcribetest.Layout(500*time.Millisecond, "alpha", "bravo", "charlie"),
		transcribetest.Layout(2500*time.Millisecond, "november", "xray")...)
	pcm, err := transcribetest.Synthesize(words, 16000)
	require.NoError(t, err)
	pcm = append(pcm, make([]int16, 4*16000-len(pcm))...)
	return words, transcribetest.EncodeWAV(pcm, 16000)
}

func requireWords(t *testing.T, want []transcribetest.TimedWord, got []transcribe.Word, tol time.Duration) {
	t.Helper()
	require.Len(t, got, len(want), "got %v", got)
	for i := range want {
		require.Equal(t, want[i].Text, got[i].Text)
		require.InDelta(t, want[i].Start, got[i].Start, float64(tol), "start of %q", want[i].Text)
		require.InDelta(t, want[i].End, got[i].End, float64(tol), "end of %q", want[i].Text)
	}
}

func TestOpenAIQuirks(t *testing.T) {
	t.Parallel()
	want, audio := speech(t)
	for name, tc := range map[string]struct {
		opts      transcribetest.Options
		cfg       func(srv *transcribetest.Server) transcribe.OpenAIConfig
		tol       time.Duration
		estimated bool
	}{
		"openai": {
			opts: transcribetest.Options{APIKey: "sk-test"},
			cfg: func(s *transcribetest.Server) transcribe.OpenAIConfig {
				return transcribe.OpenAIConfig{BaseURL: s.BaseURL(), APIKey: "sk-test"}
			},
			tol: 20 * time.Millisecond,
		},
		"whisper.cpp nested token words at /inference": {
			opts: transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/inference"},
			cfg: func(s *transcribetest.Server) transcribe.OpenAIConfig {
				return transcribe.OpenAIConfig{BaseURL: s.URL(), Path: "/inference"}
			},
			tol: 20 * time.Millisecond,
		},
		"vLLM string duration, no words": {
			opts: transcribetest.Options{Quirk: transcribetest.QuirkVLLM},
			cfg: func(s *transcribetest.Server) transcribe.OpenAIConfig {
				return transcribe.OpenAIConfig{BaseURL: s.BaseURL(), Model: "openai/whisper-large-v3"}
			},
			// Spread by length over the phrase: charlie is longer than
			// alpha in letters, not in tone.
			tol:       150 * time.Millisecond,
			estimated: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := transcribetest.NewServer(tc.opts)
			t.Cleanup(srv.Close)
			tr, err := transcribe.NewOpenAI(tc.cfg(srv))
			require.NoError(t, err)
			res, err := tr.Transcribe(t.Context(), transcribe.Request{Audio: audio, Language: "en"})
			require.NoError(t, err)
			require.Equal(t, "alpha bravo charlie november xray", res.Text)
			require.Equal(t, "en", res.Language)
			require.Equal(t, 4*time.Second, res.Duration)
			require.Equal(t, tc.estimated, res.WordsEstimated)
			requireWords(t, want, res.Words, tc.tol)
			require.Len(t, res.Phrases, 2)
			require.Equal(t, "alpha bravo charlie", res.Phrases[0].Text)
			require.InDelta(t, 500*time.Millisecond, res.Phrases[0].Start, float64(20*time.Millisecond))
			require.InDelta(t, 1600*time.Millisecond, res.Phrases[0].End, float64(20*time.Millisecond))
			require.Equal(t, "november xray", res.Phrases[1].Text)
			for _, w := range res.Words {
				require.LessOrEqual(t, w.Start, w.End)
			}
			require.Equal(t, 1, srv.Requests())
		})
	}
}

func TestOpenAISendsTheWireFormat(t *testing.T) {
	t.Parallel()
	b := setup(t, transcribetest.Options{}, transcribe.OpenAIConfig{Model: "large-v3", Language: "fr"})
	_, audio := speech(t)
	_, err := b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio, Prompt: "Alpha, Bravo."})
	require.NoError(t, err)
	_, err = b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio, Language: "de"})
	require.NoError(t, err)
	got := b.srv.Received()
	require.Len(t, got, 2)
	require.Equal(t, "large-v3", got[0].Model)
	require.Equal(t, "fr", got[0].Language, "config language when the request has none")
	require.Equal(t, "de", got[1].Language, "request language wins")
	require.Equal(t, "Alpha, Bravo.", got[0].Prompt)
	require.Equal(t, "verbose_json", got[0].ResponseFormat)
	require.ElementsMatch(t, []string{"word", "segment"}, got[0].Granularities)
	require.Equal(t, "audio.wav", got[0].Filename)
	require.Contains(t, got[0].ContentType, "wav")
	require.Equal(t, len(audio), got[0].Size)
}

// TestOpenAISendsTheVocabularyAheadOfThePreviousWords: the vocabulary
// leads the prompt, as a list, bounded so that the speaker's previous
// words (which come last, where a Whisper-class model reads its context)
// always fit; terms past the bound are left out whole.
func TestOpenAISendsTheVocabularyAheadOfThePreviousWords(t *testing.T) {
	t.Parallel()
	b := setup(t, transcribetest.Options{}, transcribe.OpenAIConfig{})
	_, audio := speech(t)
	_, err := b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio,
		Vocabulary: []string{"Alice Martin", " ", "Greffier", "Conseil"}, Prompt: "and so the budget"})
	require.NoError(t, err)
	_, err = b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio, Vocabulary: []string{"Kyutai"}})
	require.NoError(t, err)
	long := make([]string, 100)
	for i := range long {
		long[i] = fmt.Sprintf("term%02d-%s", i, strings.Repeat("x", 10))
	}
	_, err = b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio, Vocabulary: long, Prompt: "the last words"})
	require.NoError(t, err)
	got := b.srv.Received()
	require.Len(t, got, 3)
	require.Equal(t, "Alice Martin, Greffier, Conseil. and so the budget", got[0].Prompt)
	require.Equal(t, "Kyutai.", got[1].Prompt)
	p := got[2].Prompt
	require.True(t, strings.HasPrefix(p, "term00-"), p)
	require.True(t, strings.HasSuffix(p, ". the last words"), p)
	vocab := strings.TrimSuffix(p, " the last words")
	require.LessOrEqual(t, len(vocab), transcribe.MaxVocabularyPrompt)
	require.True(t, strings.HasSuffix(vocab, strings.Repeat("x", 10)+"."), "whole terms only: %q", vocab)
}

// TestOpenAIMeetingFixture runs alice's fixture, decoded by a reference
// Opus decoder, through the backend: her script words come back within 60 ms.
func TestOpenAIMeetingFixture(t *testing.T) {
	t.Parallel()
	opusdec, err := exec.LookPath("opusdec")
	require.NoError(t, err, "install opus-tools (apt-get install opus-tools)")
	dir := filepath.Join("..", "testdata", "meeting")
	script, err := transcribetest.ReadScript(filepath.Join(dir, "script.json"))
	require.NoError(t, err)
	wav := filepath.Join(t.TempDir(), "alice.wav")
	out, err := exec.CommandContext(t.Context(), opusdec, "--quiet", "--rate", "16000", filepath.Join(dir, "alice.opus"), wav).CombinedOutput()
	require.NoError(t, err, string(out))
	audio, err := os.ReadFile(wav)
	require.NoError(t, err)

	b := setup(t, transcribetest.Options{}, transcribe.OpenAIConfig{})
	res, err := b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.NoError(t, err)
	require.Equal(t, 9*time.Second, res.Duration)
	requireWords(t, script.Words("alice"), res.Words, 60*time.Millisecond)
}

func TestOpenAIHTTPErrors(t *testing.T) {
	t.Parallel()
	_, audio := speech(t)
	for name, tc := range map[string]struct {
		opts       transcribetest.Options
		key        string
		audio      []byte
		status     int
		temporary  bool
		retryAfter time.Duration
	}{
		"wrong key":   {opts: transcribetest.Options{APIKey: "right"}, key: "wrong", status: 401},
		"rate limit":  {opts: transcribetest.Options{FailFirst: 1, FailStatus: 429, RetryAfter: 2 * time.Second}, status: 429, temporary: true, retryAfter: 2 * time.Second},
		"loading":     {opts: transcribetest.Options{FailFirst: 1}, status: 503, temporary: true},
		"not audio":   {audio: []byte("this is not audio at all"), status: 415},
		"server bug":  {opts: transcribetest.Options{FailFirst: 1, FailStatus: 500}, status: 500, temporary: true},
		"unsupported": {opts: transcribetest.Options{FailFirst: 1, FailStatus: 501}, status: 501},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, tc.opts, transcribe.OpenAIConfig{APIKey: tc.key})
			req := transcribe.Request{Audio: audio}
			if tc.audio != nil {
				req = transcribe.Request{Audio: tc.audio, Duration: time.Second}
			}
			_, err := b.tr.Transcribe(t.Context(), req)
			he, ok := errors.AsType[*transcribe.HTTPError](err)
			require.True(t, ok, "want *HTTPError, got %v", err)
			require.Equal(t, tc.status, he.StatusCode)
			require.Equal(t, tc.temporary, he.Temporary())
			require.Equal(t, tc.retryAfter, he.RetryAfter)
			require.NotEmpty(t, he.Message, "the server's message is kept")
			require.Contains(t, he.Body, "error")
			require.Contains(t, err.Error(), he.Message)
		})
	}
}

func TestOpenAIRetryAfterFailuresThenSuccess(t *testing.T) {
	t.Parallel()
	b := setup(t, transcribetest.Options{FailFirst: 2, FailStatus: 503}, transcribe.OpenAIConfig{})
	_, audio := speech(t)
	for range 2 {
		_, err := b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio})
		he, ok := errors.AsType[*transcribe.HTTPError](err)
		require.True(t, ok, "%v", err)
		require.True(t, he.Temporary())
	}
	res, err := b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio})
	require.NoError(t, err)
	require.NotEmpty(t, res.Words)
	require.Equal(t, 3, b.srv.Requests())
}

// hangUp never answers: it reads the request, then waits for the client to
// give up. (net/http notices a client leaving only once the body is read.)
func hangUp(_ http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	<-r.Context().Done()
}

func TestOpenAINoAnswer(t *testing.T) {
	t.Parallel()
	_, audio := speech(t)

	t.Run("timeout", func(t *testing.T) {
		t.Parallel()
		hang := httptest.NewServer(http.HandlerFunc(hangUp))
		t.Cleanup(hang.Close)
		tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: hang.URL + "/v1", Timeout: 100 * time.Millisecond})
		require.NoError(t, err)
		_, err = tr.Transcribe(t.Context(), transcribe.Request{Audio: audio})
		he, ok := errors.AsType[*transcribe.HTTPError](err)
		require.True(t, ok, "%v", err)
		require.Zero(t, he.StatusCode)
		require.True(t, he.Timeout)
		require.True(t, he.Temporary())
	})
	t.Run("caller cancels", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(arrived)
			hangUp(w, r)
		}))
		t.Cleanup(hang.Close)
		tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: hang.URL + "/v1"})
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		go func() {
			<-arrived
			cancel()
		}()
		_, err = tr.Transcribe(ctx, transcribe.Request{Audio: audio})
		require.ErrorIs(t, err, context.Canceled)
		_, isHTTP := errors.AsType[*transcribe.HTTPError](err)
		require.False(t, isHTTP, "a cancelled caller is not a backend failure")
	})
	t.Run("connection refused", func(t *testing.T) {
		t.Parallel()
		gone := httptest.NewServer(http.NotFoundHandler())
		gone.Close()
		tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: gone.URL + "/v1"})
		require.NoError(t, err)
		_, err = tr.Transcribe(t.Context(), transcribe.Request{Audio: audio})
		he, ok := errors.AsType[*transcribe.HTTPError](err)
		require.True(t, ok, "%v", err)
		require.Zero(t, he.StatusCode)
		require.False(t, he.Timeout)
		require.True(t, he.Temporary())
		require.Error(t, he.Err)
	})
}

func TestOpenAIBadAnswers(t *testing.T) {
	t.Parallel()
	_, audio := speech(t) // 4 s
	for name, body := range map[string]string{
		"truncated":        `{"text":"alpha","segments":[{"start":0.5,`,
		"word after end":   `{"text":"alpha","words":[{"word":"alpha","start":3.9,"end":5.0}]}`,
		"backwards":        `{"text":"a b","words":[{"word":"a","start":2,"end":2.3},{"word":"b","start":1,"end":1.3}]}`,
		"NaN duration":     `{"text":"a","duration":"NaN"}`,
		"end before start": `{"text":"a","segments":[{"start":2,"end":1,"text":"a"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(body))
			}))
			t.Cleanup(srv.Close)
			tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: srv.URL + "/v1"})
			require.NoError(t, err)
			_, err = tr.Transcribe(t.Context(), transcribe.Request{Audio: audio})
			require.ErrorIs(t, err, transcribe.ErrBadAnswer)
		})
	}
}

func TestOpenAIInvalidRequests(t *testing.T) {
	t.Parallel()
	b := setup(t, transcribetest.Options{}, transcribe.OpenAIConfig{MaxUpload: 1000})
	_, err := b.tr.Transcribe(t.Context(), transcribe.Request{})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	_, err = b.tr.Transcribe(t.Context(), transcribe.Request{Audio: make([]byte, 1001), Duration: time.Second})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	_, err = b.tr.Transcribe(t.Context(), transcribe.Request{Audio: []byte("no header")})
	require.ErrorIs(t, err, transcribe.ErrInvalidRequest)
	require.Zero(t, b.srv.Requests(), "nothing invalid is sent")
}

func TestNewOpenAIValidates(t *testing.T) {
	t.Parallel()
	for _, cfg := range []transcribe.OpenAIConfig{
		{},
		{BaseURL: "127.0.0.1:8000"},
		{BaseURL: "ftp://host/v1"},
		{BaseURL: "http://host/v1", Path: "inference"},
		{BaseURL: "http://host/v1", Timeout: -time.Second},
	} {
		_, err := transcribe.NewOpenAI(cfg)
		require.Error(t, err, "%+v", cfg)
		require.True(t, strings.HasPrefix(err.Error(), "transcribe: "), err.Error())
	}
	def := transcribe.OpenAIConfig{BaseURL: "http://host/v1"}.WithDefaults()
	require.Equal(t, transcribe.DefaultModel, def.Model)
	require.Equal(t, transcribe.DefaultPath, def.Path)
	require.Equal(t, transcribe.DefaultMaxUpload, def.MaxUpload)
	require.NotNil(t, def.HTTPClient)
}

func TestOpenAIConcurrentCalls(t *testing.T) {
	t.Parallel()
	b := setup(t, transcribetest.Options{}, transcribe.OpenAIConfig{})
	want, audio := speech(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Go(func() {
			res, err := b.tr.Transcribe(t.Context(), transcribe.Request{Audio: audio})
			if err == nil && len(res.Words) != len(want) {
				err = errors.New("wrong words")
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, 4, b.srv.Requests())
}
