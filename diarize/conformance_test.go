package diarize_test

// The conformance suite: what every pyannote-style diarization server must
// answer, run against the double (diarizetest) always and against a real
// server when its URL is in the environment:
//
//	GREFFIER_CONFORMANCE_PYANNOTE_URL   API root without /v1, e.g. https://api.pyannote.ai
//	GREFFIER_CONFORMANCE_PYANNOTE_KEY   API key, sent as a bearer token (optional; also
//	                                    checks that a wrong key gets 401)
//	GREFFIER_CONFORMANCE_PYANNOTE_MODEL model, e.g. community-1 (optional, the server's choice)
//
//	GREFFIER_CONFORMANCE_PYANNOTE_URL=https://api.pyannote.ai GREFFIER_CONFORMANCE_PYANNOTE_KEY=… \
//	    go test -run Conformance -v ./diarize/
//
// The audio is uploaded (POST /v1/media/input and its presigned PUT), so
// the server needs no route back to the test; jobs are polled, since a
// webhook would need one too (the double's run checks the webhook path).
// Real servers are sent two espeak-ng voices taking turns when espeak-ng
// is installed; else the double's tone voices, which no real model hears
// as speech: then only the answers' shape is checked.

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/diarize/diarizetest"
	"github.com/greffier/greffier/internal/audio"
	"github.com/greffier/greffier/internal/speechtest"
)

// conformanceAudio is 16 kHz mono audio whose voices are known.
type conformanceAudio struct {
	// what says where the audio came from, for messages.
	what   string
	wav    []byte
	length time.Duration
	// voices are the stretches of speech, each labelled with its voice.
	// Labels are the double's (SPEAKER_00, ... in order of appearance)
	// when exact, else names for this test only.
	voices []diarize.Turn
	// exact: the backend must answer voices, labels and times within
	// tolerance (the double hearing its tone voices). Else: every stretch
	// of speech mostly covered by turns, the voices' labels logged.
	exact bool
	// heard: false when the backend cannot be expected to hear any speech
	// (tone voices sent to a real model): shape checks only.
	heard bool
}

// conformanceTones is twoVoices, the double's tone voices taking turns.
func conformanceTones(t *testing.T) conformanceAudio {
	t.Helper()
	samples, err := diarizetest.Synthesize(twoVoices)
	require.NoError(t, err)
	samples = append(samples, make([]int16, int(audioTail.Seconds()*diarizetest.SampleRate))...)
	return conformanceAudio{what: "tone voices", wav: encodeWAV(t, samples), length: samplesLength(samples),
		voices: twoVoicesTurns, exact: true, heard: true}
}

func encodeWAV(t *testing.T, samples []int16) []byte {
	t.Helper()
	var b bytes.Buffer
	require.NoError(t, audio.WriteWAV(&b, samples))
	return b.Bytes()
}

func samplesLength(samples []int16) time.Duration {
	return time.Duration(len(samples)) * time.Second / diarizetest.SampleRate
}

// conformanceLines are said in turn by a low male and a high female
// espeak-ng voice, with pauses between them.
var conformanceLines = []struct {
	voice, espeak, text string
}{
	{"male", "en-us", "Good morning everyone. The meeting starts now, and the budget comes first."},
	{"female", "en-us+f3", "Thank you. The budget for next year is ready, I sent it on Monday."},
	{"male", "en-us", "Good. Who has questions about the schedule for next week?"},
	{"female", "en-us+f3", "I do. Can we move the review to Thursday afternoon?"},
}

const espeakGap = time.Second // silence before each line, and after the last

// conformanceEspeak speaks conformanceLines with espeak-ng, as 16 kHz
// mono WAV, or reports why it cannot.
func conformanceEspeak(t *testing.T) (conformanceAudio, error) {
	t.Helper()
	gap := make([]int16, int(espeakGap.Seconds()*diarizetest.SampleRate))
	samples := gap
	var voices []diarize.Turn
	for _, line := range conformanceLines {
		pcm, err := speechtest.Espeak(t.Context(), line.espeak, line.text, 150, diarizetest.SampleRate)
		if err != nil {
			return conformanceAudio{}, err
		}
		// Cut espeak-ng's own silence, so that the stretches of voices are
		// where the speech is.
		pcm = speechtest.TrimSilence(pcm)
		if len(pcm) == 0 {
			return conformanceAudio{}, fmt.Errorf("espeak-ng said nothing for %q", line.text)
		}
		start := samplesLength(samples)
		samples = append(samples, pcm...)
		voices = append(voices, diarize.Turn{Label: line.voice, StartMS: start.Milliseconds(), EndMS: samplesLength(samples).Milliseconds()})
		samples = append(samples, gap...)
	}
	return conformanceAudio{what: "espeak-ng voices", wav: encodeWAV(t, samples), length: samplesLength(samples), voices: voices, heard: true}, nil
}

// upload puts wav in the server's media store under a key of its own and
// returns the media:// URL to diarize.
func upload(t *testing.T, p *diarize.Pyannote, wav []byte) string {
	t.Helper()
	key := "greffier-conformance/" + strings.ToLower(rand.Text()) + ".wav"
	url, err := p.Upload(t.Context(), key, bytes.NewReader(wav), int64(len(wav)))
	require.NoError(t, err, "upload")
	return url
}

// checkShape asserts what every answer must be, heard or not: labelled
// turns inside the audio, none empty, in order of start.
func checkShape(t *testing.T, turns []diarize.Turn, length time.Duration) {
	t.Helper()
	var last int64
	for i, tr := range turns {
		require.NotEmpty(t, tr.Label, "turn %d: %+v", i, tr)
		require.GreaterOrEqual(t, tr.StartMS, int64(0), "turn %d: %+v", i, tr)
		require.Less(t, tr.StartMS, tr.EndMS, "turn %d: %+v", i, tr)
		require.LessOrEqual(t, tr.EndMS, length.Milliseconds(), "turn %d ends after the audio: %+v", i, tr)
		require.GreaterOrEqual(t, tr.StartMS, last, "turn %d starts before the previous one: %+v", i, tr)
		last = tr.StartMS
	}
}

// overlaps returns how long turns cover span, and which label covers most.
func overlaps(span diarize.Turn, turns []diarize.Turn) (covered int64, label string) {
	byLabel := map[string]int64{}
	var intervals [][2]int64
	for _, tr := range turns {
		from, to := max(tr.StartMS, span.StartMS), min(tr.EndMS, span.EndMS)
		if to <= from {
			continue
		}
		byLabel[tr.Label] += to - from
		intervals = append(intervals, [2]int64{from, to})
	}
	// Turns may overlap (several voices at once): count each ms once.
	end := span.StartMS
	for _, iv := range intervals { // sorted by start, as turns are
		if iv[1] > end {
			covered += iv[1] - max(iv[0], end)
			end = iv[1]
		}
	}
	var best int64
	for l, ms := range byLabel {
		if ms > best || ms == best && l < label {
			label, best = l, ms
		}
	}
	return covered, label
}

func labels(turns []diarize.Turn) map[string]bool {
	set := map[string]bool{}
	for _, tr := range turns {
		set[tr.Label] = true
	}
	return set
}

// runConformance checks what Greffier relies on from any pyannote-style
// server, through p as configured: the key is accepted; uploaded audio
// is diarized to turns inside the audio, in order, covering the speech
// (exactly, labels included, for the double); silence is no error;
// audio never uploaded is refused; concurrent jobs all finish.
func runConformance(t *testing.T, p *diarize.Pyannote, speech conformanceAudio) {
	t.Helper()

	t.Run("check", func(t *testing.T) {
		require.NoError(t, p.Check(t.Context()), "GET /v1/test")
	})

	t.Run("voices", func(t *testing.T) {
		turns, err := p.Diarize(t.Context(), upload(t, p, speech.wav), speech.length)
		require.NoError(t, err)
		checkShape(t, turns, speech.length)
		t.Logf("%s (%v): %d turns, labels %v: %+v", speech.what, speech.length, len(turns), labels(turns), turns)
		if !speech.heard {
			t.Logf("%s cannot be heard as speech by a real model: only the answer's shape was checked", speech.what)
			return
		}
		require.NotEmpty(t, turns, "speech with no turn")
		if speech.exact {
			requireTurns(t, speech.voices, turns)
			require.Len(t, labels(turns), len(labels(speech.voices)), "one label a voice")
			return
		}
		// Every stretch of speech is mostly inside turns; which labels the
		// voices get is the model's business (espeak's voices are
		// robotic), reported but not judged.
		labelOf := map[string]map[string]bool{}
		for _, v := range speech.voices {
			covered, label := overlaps(v, turns)
			span := v.EndMS - v.StartMS
			require.GreaterOrEqual(t, 2*covered, span, "speech at %d-%d ms is only %d ms inside turns", v.StartMS, v.EndMS, covered)
			if labelOf[v.Label] == nil {
				labelOf[v.Label] = map[string]bool{}
			}
			labelOf[v.Label][label] = true
		}
		t.Logf("labels given to each voice (most of each stretch): %v", labelOf)
		if len(labels(turns)) < 2 {
			t.Logf("the server heard one voice where two take turns")
		}
	})

	t.Run("silence", func(t *testing.T) {
		length := 3 * time.Second
		wav := encodeWAV(t, make([]int16, int(length.Seconds()*diarizetest.SampleRate)))
		turns, err := p.Diarize(t.Context(), upload(t, p, wav), length)
		require.NoError(t, err)
		checkShape(t, turns, length)
		if speech.exact {
			require.Empty(t, turns)
		}
		t.Logf("silence: %d turns %+v", len(turns), turns)
	})

	t.Run("not uploaded", func(t *testing.T) {
		url := "media://greffier-conformance/never-uploaded-" + strings.ToLower(rand.Text()) + ".wav"
		_, err := p.Diarize(t.Context(), url, speech.length)
		he, isHTTP := errors.AsType[*diarize.HTTPError](err)
		je, isJob := errors.AsType[*diarize.JobError](err)
		require.True(t, isHTTP || isJob, "want a refusal (4xx) or a failed job, got %v", err)
		if isHTTP {
			require.GreaterOrEqual(t, he.StatusCode, 400, "%v", err)
			require.Less(t, he.StatusCode, 500, "%v", err)
			require.False(t, he.Temporary(), "%v", err)
		} else {
			require.NotEqual(t, "succeeded", je.Status)
		}
		t.Logf("not uploaded: %v", err)
	})

	t.Run("concurrent", func(t *testing.T) {
		url := upload(t, p, speech.wav)
		var wg sync.WaitGroup
		results := make([][]diarize.Turn, 2)
		errs := make([]error, len(results))
		for i := range results {
			wg.Go(func() { results[i], errs[i] = p.Diarize(t.Context(), url, speech.length) })
		}
		wg.Wait()
		for i, turns := range results {
			require.NoError(t, errs[i], "job %d", i)
			checkShape(t, turns, speech.length)
			if speech.heard {
				require.NotEmpty(t, turns, "job %d", i)
			}
			if speech.exact {
				requireTurns(t, speech.voices, turns)
			}
		}
	})
}

// TestConformancePyannoteDoubles runs the suite against the double, by
// webhook and by polling, well-behaved and slow.
func TestConformancePyannoteDoubles(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]setupOpts{
		"polling": {},
		"webhook": {webhook: true},
		"slow, rate-limited polls, exclusive": {
			double: diarizetest.Options{JobDelay: 200 * time.Millisecond, RateLimitPolls: 1},
			config: diarize.PyannoteConfig{Exclusive: true, Model: "community-1"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, o)
			runConformance(t, b.p, conformanceTones(t))
			if o.webhook {
				require.Zero(t, b.double.Polls(), "every job came by webhook")
			} else {
				require.Positive(t, b.double.Polls())
			}
		})
	}
}

// TestConformancePyannoteServer runs the suite against a real
// pyannote-style server named by the environment.
func TestConformancePyannoteServer(t *testing.T) {
	t.Parallel()
	base := os.Getenv("GREFFIER_CONFORMANCE_PYANNOTE_URL")
	if base == "" {
		t.Skip("no real pyannote-style server to check: set GREFFIER_CONFORMANCE_PYANNOTE_URL (the API root without /v1, " +
			"e.g. https://api.pyannote.ai), and optionally GREFFIER_CONFORMANCE_PYANNOTE_KEY and _MODEL, to run the conformance suite against it")
	}
	client := &http.Client{}
	t.Cleanup(client.CloseIdleConnections)
	cfg := diarize.PyannoteConfig{
		BaseURL:    base,
		APIKey:     os.Getenv("GREFFIER_CONFORMANCE_PYANNOTE_KEY"),
		Model:      os.Getenv("GREFFIER_CONFORMANCE_PYANNOTE_MODEL"),
		HTTPClient: client,
	}
	p, err := diarize.NewPyannote(cfg)
	require.NoError(t, err)
	speech, err := conformanceEspeak(t)
	if err != nil {
		t.Logf("sending tone voices instead of speech: %v", err)
		speech = conformanceTones(t)
		speech.exact, speech.heard = false, false
	}
	runConformance(t, p, speech)

	t.Run("wrong key", func(t *testing.T) {
		if cfg.APIKey == "" {
			t.Skip("GREFFIER_CONFORMANCE_PYANNOTE_KEY is unset: the server's refusal of a wrong key is not checked")
		}
		bad := cfg
		bad.APIKey = "greffier-conformance-wrong-key"
		p, err := diarize.NewPyannote(bad)
		require.NoError(t, err)
		err = p.Check(t.Context())
		he, ok := errors.AsType[*diarize.HTTPError](err)
		require.True(t, ok, "want HTTP 401, got %v", err)
		require.Equal(t, http.StatusUnauthorized, he.StatusCode)
		require.False(t, he.Temporary(), "a bad key stays bad")
	})
}

// TestConformanceEspeakVoices checks the real-speech fixture itself: 16
// kHz, silence between the lines, speech where the voices say it is.
func TestConformanceEspeakVoices(t *testing.T) {
	t.Parallel()
	speech, err := conformanceEspeak(t)
	if err != nil {
		t.Skipf("cannot make real speech here (%v): real servers get tone voices", err)
	}
	samples, rate, err := audio.ReadWAV(bytes.NewReader(speech.wav))
	require.NoError(t, err)
	require.Equal(t, diarizetest.SampleRate, rate)
	require.Equal(t, samplesLength(samples), speech.length)
	require.Len(t, speech.voices, len(conformanceLines))
	at := func(ms int64) int { return int(ms * diarizetest.SampleRate / 1000) }
	var last int64
	for i, v := range speech.voices {
		require.Equal(t, conformanceLines[i].voice, v.Label)
		require.Equal(t, last+espeakGap.Milliseconds(), v.StartMS, "line %d starts after a gap", i)
		require.Greater(t, v.EndMS-v.StartMS, int64(2000), "line %d lasts seconds", i)
		// Times are whole ms, truncated: the last one's speech may run
		// into the ms after its end.
		for _, s := range samples[at(last+1):at(v.StartMS)] {
			require.Zero(t, s, "silence before line %d", i)
		}
		var energy float64
		for _, s := range samples[at(v.StartMS):at(v.EndMS)] {
			energy += float64(s) * float64(s)
		}
		require.Greater(t, math.Sqrt(energy/float64(at(v.EndMS)-at(v.StartMS))), 300.0, "line %d is audible", i)
		last = v.EndMS
	}
	require.InDelta(t, last+espeakGap.Milliseconds(), speech.length.Milliseconds(), 1)
}

func TestConformanceHelpers(t *testing.T) {
	t.Parallel()
	t.Run("overlaps counts each ms once", func(t *testing.T) {
		span := diarize.Turn{StartMS: 1000, EndMS: 3000}
		covered, label := overlaps(span, []diarize.Turn{
			{Label: "B", StartMS: 0, EndMS: 1500},
			{Label: "A", StartMS: 1200, EndMS: 2600},
			{Label: "B", StartMS: 2800, EndMS: 4000},
		})
		require.Equal(t, int64(1800), covered)
		require.Equal(t, "A", label)
		covered, label = overlaps(span, nil)
		require.Zero(t, covered)
		require.Empty(t, label)
	})
}
