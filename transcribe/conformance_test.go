package transcribe_test

// The conformance suite: what every speech backend must answer, run
// against each test double always and against a real server when its URL
// is in the environment:
//
//	GREFFIER_CONFORMANCE_OPENAI_URL   base URL, e.g. http://127.0.0.1:8000/v1
//	GREFFIER_CONFORMANCE_OPENAI_KEY   API key (optional)
//	GREFFIER_CONFORMANCE_OPENAI_MODEL model (optional, default whisper-1)
//	GREFFIER_CONFORMANCE_OPENAI_PATH  endpoint path (optional; /inference for whisper.cpp)
//	GREFFIER_CONFORMANCE_KYUTAI_URL   WebSocket URL, e.g. ws://127.0.0.1:8080/api/asr-streaming
//	GREFFIER_CONFORMANCE_KYUTAI_KEY   API key, sent as kyutai-api-key (optional; also
//	                                  checks that a wrong key gets 401)
//	GREFFIER_CONFORMANCE_KYUTAI_DELAY model delay (optional, default 500ms for stt-1b; 2.5s for stt-2.6b)
//
//	GREFFIER_CONFORMANCE_OPENAI_URL=http://127.0.0.1:8000/v1 go test -run Conformance -v ./transcribe/
//	GREFFIER_CONFORMANCE_KYUTAI_URL=ws://127.0.0.1:8080/api/asr-streaming go test -run Conformance -v ./transcribe/
//
// A test whose URL is unset skips, saying which variables to set. Real
// servers are sent real speech made by espeak-ng when it is installed
// (else tone speech, which only shape checks can judge), as WAV and, when
// opusenc is installed, as Ogg Opus. The doubles get tone speech as WAV
// and alice's meeting fixture as Greffier writes Ogg Opus. Each backend's
// tests in this package run the same suite by calling runConformance
// with its Transcriber: TestConformanceDoubles and
// TestConformanceOpenAIServer here, TestConformanceKyutaiDoubles and
// TestConformanceKyutaiServer in kyutai_conformance_test.go. The
// diarization backend has its own suite in diarize/conformance_test.go.

import (
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/internal/speechtest"
	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/transcribe/transcribetest"
)

// conformanceSpeech is audio whose words are known.
type conformanceSpeech struct {
	// what says where the audio came from, for messages.
	what string
	// audio is a WAV or an Ogg Opus file; silence is two seconds of
	// silence in the same format (nil: a WAV of it).
	audio, silence []byte
	words          []string
	// exact: the backend must hear every word, in order (a double hearing
	// tone speech); else at least half of them (a real model).
	exact bool
	// heard: false when the backend cannot be expected to hear the words
	// at all (tone speech sent to a real model): shape checks only.
	heard bool
}

// conformanceTones is two utterances of tone speech in 6 s of 16 kHz audio.
func conformanceTones(t *testing.T) conformanceSpeech {
	t.Helper()
	words := append(transcribetest.Layout(700*time.Millisecond, "hotel", "echo", "lima", "lima", "oscar"),
		transcribetest.Layout(3500*time.Millisecond, "whiskey", "oscar", "romeo", "lima", "delta")...)
	pcm, err := transcribetest.Synthesize(words, 16000)
	require.NoError(t, err)
	pcm = append(pcm, make([]int16, 6*16000-len(pcm))...)
	texts := make([]string, len(words))
	for i, w := range words {
		texts[i] = w.Text
	}
	return conformanceSpeech{what: "tone speech", audio: transcribetest.EncodeWAV(pcm, 16000), words: texts, exact: true, heard: true}
}

// conformanceOggOpus is alice's meeting fixture as Greffier writes Ogg
// Opus (pion's oggwriter, pre-skip 3840), and a silent stretch of it.
func conformanceOggOpus(t *testing.T) conformanceSpeech {
	t.Helper()
	dir := filepath.Join("..", "testdata", "meeting")
	raw, err := os.ReadFile(filepath.Join(dir, "alice.opus"))
	require.NoError(t, err)
	script, err := transcribetest.ReadScript(filepath.Join(dir, "script.json"))
	require.NoError(t, err)
	var texts []string
	for _, w := range script.Words("alice") {
		texts = append(texts, w.Text)
	}
	speech, _, err := transcribetest.CutOggOpus(raw, 0, 0)
	require.NoError(t, err)
	silence, _, err := transcribetest.CutOggOpus(raw, 3*time.Second, 5*time.Second) // between her utterances
	require.NoError(t, err)
	return conformanceSpeech{what: "tone speech as Ogg Opus", audio: speech, silence: silence, words: texts, exact: true, heard: true}
}

const conformanceText = "Good morning everyone. The meeting starts at nine. Alice presents the budget, then Bob asks about the schedule for next week."

// conformanceEspeak speaks conformanceText with espeak-ng, as 16 kHz mono WAV with
// half a second of silence around it, or reports why it cannot.
func conformanceEspeak(t *testing.T) (conformanceSpeech, error) {
	t.Helper()
	pcm, err := speechtest.Espeak(t.Context(), "en-us", conformanceText, 140, 16000)
	if err != nil {
		return conformanceSpeech{}, err
	}
	pad := make([]int16, 8000)
	pcm = append(append(pad, pcm...), pad...)
	return conformanceSpeech{what: "espeak-ng speech", audio: transcribetest.EncodeWAV(pcm, 16000), words: conformanceWords(conformanceText), heard: true}, nil
}

// conformanceAsOggOpus encodes speech with opusenc as Ogg Opus like
// Greffier's recordings (48 kHz mono, 32 kbit/s, 20 ms packets), or
// reports why it cannot.
func conformanceAsOggOpus(t *testing.T, speech conformanceSpeech) (conformanceSpeech, error) {
	t.Helper()
	bin, err := exec.LookPath("opusenc")
	if err != nil {
		return conformanceSpeech{}, errors.New("opusenc is not installed (apt-get install opus-tools)")
	}
	encode := func(wav []byte) ([]byte, error) {
		dir := t.TempDir()
		in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.opus")
		if err := os.WriteFile(in, wav, 0o600); err != nil {
			return nil, err
		}
		if msg, err := exec.CommandContext(t.Context(), bin, "--quiet", "--bitrate", "32", "--framesize", "20", in, out).CombinedOutput(); err != nil {
			return nil, errors.New("opusenc failed: " + err.Error() + ": " + string(msg))
		}
		return os.ReadFile(out)
	}
	silence := speech.silence
	if silence == nil {
		silence = transcribetest.EncodeWAV(make([]int16, 2*16000), 16000)
	}
	if speech.audio, err = encode(speech.audio); err != nil {
		return conformanceSpeech{}, err
	}
	if speech.silence, err = encode(silence); err != nil {
		return conformanceSpeech{}, err
	}
	speech.what += " as Ogg Opus"
	return speech, nil
}

// conformanceWords lowercases text and splits it into words without punctuation.
func conformanceWords(text string) []string {
	return strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '\''
	})
}

// runConformance checks what the pipeline relies on from any backend:
// speech gives text, words with times inside the audio and in order, and
// a language; silence is no error; concurrent calls all answer.
func runConformance(t *testing.T, tr transcribe.Transcriber, speech conformanceSpeech) {
	t.Helper()
	audioLen := func(audio []byte) time.Duration {
		pcm, rate, err := transcribetest.DecodeAudio(audio)
		require.NoError(t, err)
		return time.Duration(len(pcm)) * time.Second / time.Duration(rate)
	}
	checkShape := func(t *testing.T, res transcribe.Result, audio time.Duration) {
		t.Helper()
		var last time.Duration
		for i, w := range res.Words {
			require.NotEmpty(t, strings.TrimSpace(w.Text), "word %d", i)
			require.GreaterOrEqual(t, w.Start, last, "word %d %q starts before the previous one", i, w.Text)
			require.LessOrEqual(t, w.Start, w.End, "word %d %q", i, w.Text)
			require.LessOrEqual(t, w.End, audio, "word %d %q ends after the audio", i, w.Text)
			last = w.Start
		}
		last = 0
		for i, s := range res.Phrases {
			require.GreaterOrEqual(t, s.Start, last, "phrase %d", i)
			require.LessOrEqual(t, s.Start, s.End, "phrase %d", i)
			require.LessOrEqual(t, s.End, audio, "phrase %d", i)
			last = s.Start
		}
		require.InDelta(t, audio, res.Duration, float64(500*time.Millisecond), "duration")
	}

	t.Run("speech", func(t *testing.T) {
		audio := audioLen(speech.audio)
		res, err := tr.Transcribe(t.Context(), transcribe.Request{Audio: speech.audio, Language: "en", ExpectSpeech: speech.heard})
		require.NoError(t, err)
		checkShape(t, res, audio)
		t.Logf("%s (%v): %q, language %q, %d words (estimated: %v), %d phrases",
			speech.what, audio, res.Text, res.Language, len(res.Words), res.WordsEstimated, len(res.Phrases))
		if !speech.heard {
			t.Logf("%s cannot be understood by a real model: only the answer's shape was checked", speech.what)
			return
		}
		require.NotEmpty(t, res.Text)
		require.NotEmpty(t, res.Words)
		require.NotEmpty(t, res.Language)
		var heard []string
		for _, w := range res.Words {
			heard = append(heard, conformanceWords(w.Text)...)
		}
		if speech.exact {
			require.Equal(t, speech.words, heard)
			return
		}
		found := 0
		for _, w := range speech.words {
			if strings.Contains(" "+strings.Join(heard, " ")+" ", " "+w+" ") {
				found++
			}
		}
		require.GreaterOrEqual(t, 2*found, len(speech.words), "heard %v, said %v", heard, speech.words)
		// The words are spread over the speech, not piled at one end.
		require.Less(t, res.Words[0].Start, audio/4)
		require.Greater(t, res.Words[len(res.Words)-1].End, audio/2)
	})

	t.Run("silence", func(t *testing.T) {
		silence := speech.silence
		if silence == nil {
			silence = transcribetest.EncodeWAV(make([]int16, 2*16000), 16000)
		}
		res, err := tr.Transcribe(t.Context(), transcribe.Request{Audio: silence, Language: "en"})
		require.NoError(t, err)
		checkShape(t, res, audioLen(silence))
		t.Logf("silence heard as %q", res.Text)
	})

	t.Run("concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		texts := make([]string, 3)
		errs := make([]error, 3)
		for i := range texts {
			wg.Go(func() {
				res, err := tr.Transcribe(t.Context(), transcribe.Request{Audio: speech.audio, Language: "en"})
				texts[i], errs[i] = res.Text, err
			})
		}
		wg.Wait()
		for i := range texts {
			require.NoError(t, errs[i], "call %d", i)
			if speech.heard {
				require.NotEmpty(t, texts[i], "call %d", i)
			}
		}
	})
}

// conformanceDoubles is what the doubles are sent: tone speech as WAV,
// and alice's meeting fixture as Ogg Opus.
type conformanceDoubles struct{ tones, ogg conformanceSpeech }

func newConformanceDoubles(t *testing.T) conformanceDoubles {
	t.Helper()
	return conformanceDoubles{tones: conformanceTones(t), ogg: conformanceOggOpus(t)}
}

// each runs run in a parallel subtest "name, what" with tone speech, and
// in another with the Ogg Opus fixture when ogg.
func (d conformanceDoubles) each(t *testing.T, name string, ogg bool, run func(t *testing.T, speech conformanceSpeech)) {
	t.Helper()
	speeches := []conformanceSpeech{d.tones}
	if ogg {
		speeches = append(speeches, d.ogg)
	}
	for _, speech := range speeches {
		t.Run(name+", "+speech.what, func(t *testing.T) {
			t.Parallel()
			run(t, speech)
		})
	}
}

// asPipeline runs the suite through Guard as the pipeline uses it: the job
// layer calls again after a failure (a flaky double's retries come at once).
func asPipeline(tr transcribe.Transcriber) transcribe.Transcriber {
	return &asJobs{tr: transcribe.NewGuard(tr, transcribe.GuardConfig{}), attempts: 8}
}

// runConformanceServer runs the suite against tr, a real server at url,
// through Guard: with espeak-ng's speech, else tone speech (saying why),
// as WAV and, when opusenc is installed, as Ogg Opus. It returns the
// speech sent, for a backend's own checks.
func runConformanceServer(t *testing.T, tr transcribe.Transcriber, url string) conformanceSpeech {
	t.Helper()
	speech, err := conformanceEspeak(t)
	if err != nil {
		t.Logf("sending tone speech instead of real speech: %v", err)
		speech = conformanceTones(t)
		speech.exact, speech.heard = false, false
	}
	guard := transcribe.NewGuard(tr, transcribe.GuardConfig{Concurrency: 2, Name: url})
	runConformance(t, guard, speech)

	t.Run("Ogg Opus", func(t *testing.T) {
		ogg, err := conformanceAsOggOpus(t, speech)
		if err != nil {
			t.Skipf("the suite was not run with Ogg Opus: %v", err)
		}
		runConformance(t, guard, ogg)
	})
	return speech
}

// TestConformanceDoubles runs the suite against every shape of the
// OpenAI-compatible double, well-behaved and misbehaving, through Guard
// as the pipeline uses it, with speech as WAV, and as Ogg Opus where the
// audio takes another way (sent as it is, decoded for whisper.cpp, in the
// diarized form).
func TestConformanceDoubles(t *testing.T) {
	t.Parallel()
	doubles := newConformanceDoubles(t)
	for name, tc := range map[string]struct {
		opts   transcribetest.Options
		openai transcribe.OpenAIConfig
		ogg    bool // run with Ogg Opus too
	}{
		"openai":          {ogg: true},
		"vLLM":            {opts: transcribetest.Options{Quirk: transcribetest.QuirkVLLM}},
		"whisper.cpp":     {opts: transcribetest.Options{Quirk: transcribetest.QuirkWhisperCpp, Path: "/inference"}, ogg: true},
		"diarized_json":   {openai: transcribe.OpenAIConfig{Diarized: true}, ogg: true},
		"flaky and lying": {opts: transcribetest.Options{FailFirst: 2, FailStatus: 429, RetryAfter: time.Millisecond, Lie: transcribetest.LieBackwards, LieFirst: 1}},
	} {
		doubles.each(t, name, tc.ogg, func(t *testing.T, speech conformanceSpeech) {
			srv := transcribetest.NewServer(tc.opts)
			t.Cleanup(srv.Close)
			cfg := tc.openai
			cfg.BaseURL = srv.BaseURL()
			if tc.opts.Path != "" {
				cfg.BaseURL, cfg.Path = srv.URL(), tc.opts.Path
			}
			tr, err := transcribe.NewOpenAI(cfg)
			require.NoError(t, err)
			runConformance(t, asPipeline(tr), speech)
		})
	}
}

// TestConformanceOpenAIServer runs the suite against a real
// OpenAI-compatible server named by the environment.
func TestConformanceOpenAIServer(t *testing.T) {
	t.Parallel()
	url := os.Getenv("GREFFIER_CONFORMANCE_OPENAI_URL")
	if url == "" {
		t.Skip("no real OpenAI-compatible server to check: set GREFFIER_CONFORMANCE_OPENAI_URL (e.g. http://127.0.0.1:8000/v1), " +
			"and optionally GREFFIER_CONFORMANCE_OPENAI_KEY, _MODEL, _PATH, to run the conformance suite against it")
	}
	tr, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{
		BaseURL: url,
		APIKey:  os.Getenv("GREFFIER_CONFORMANCE_OPENAI_KEY"),
		Model:   os.Getenv("GREFFIER_CONFORMANCE_OPENAI_MODEL"),
		Path:    os.Getenv("GREFFIER_CONFORMANCE_OPENAI_PATH"),
	})
	require.NoError(t, err)
	runConformanceServer(t, tr, url)

	t.Run("not audio", func(t *testing.T) {
		_, err := tr.Transcribe(t.Context(), transcribe.Request{Audio: []byte("this is not audio, only text"), Duration: time.Second})
		he, ok := errors.AsType[*transcribe.HTTPError](err)
		require.True(t, ok, "want an HTTP error status, got %v", err)
		require.GreaterOrEqual(t, he.StatusCode, 400)
		t.Logf("not audio: %v (temporary: %v)", err, he.Temporary())
	})
}

// TestConformanceEspeakSpeech checks the real-speech fixture itself: 16 kHz, the
// silence around it, a plausible length for the text.
func TestConformanceEspeakSpeech(t *testing.T) {
	t.Parallel()
	speech, err := conformanceEspeak(t)
	if err != nil {
		t.Skipf("cannot make real speech here (%v): real servers get tone speech", err)
	}
	pcm, rate, err := transcribetest.DecodeWAV(speech.audio)
	require.NoError(t, err)
	require.Equal(t, 16000, rate)
	length := time.Duration(len(pcm)) * time.Second / 16000
	require.Greater(t, length, 5*time.Second)
	require.Less(t, length, 20*time.Second)
	for _, s := range pcm[:8000] {
		require.Zero(t, s)
	}
	var energy float64
	for _, s := range pcm[8000 : len(pcm)-8000] {
		energy += float64(s) * float64(s)
	}
	require.Greater(t, math.Sqrt(energy/float64(len(pcm)-16000)), 300.0, "speech is audible")
	require.Equal(t, "good", speech.words[0])
	require.Contains(t, speech.words, "budget")
}
