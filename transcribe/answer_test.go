package transcribe

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseAnswerShapes(t *testing.T) {
	t.Parallel()
	const audio = 4 * time.Second
	for name, tc := range map[string]struct {
		body      string
		text      string
		duration  time.Duration
		words     []Word
		estimated bool
	}{
		"openai": {
			body:     `{"task":"transcribe","language":"english","duration":3.5,"text":" Hi there.","segments":[{"id":0,"start":0.5,"end":1.5,"text":" Hi there.","no_speech_prob":0.01}],"words":[{"word":"Hi","start":0.5,"end":0.8},{"word":"there.","start":0.9,"end":1.5}]}`,
			text:     "Hi there.",
			duration: 3500 * time.Millisecond,
			words:    []Word{{"Hi", 500 * time.Millisecond, 800 * time.Millisecond}, {"there.", 900 * time.Millisecond, 1500 * time.Millisecond}},
		},
		"vLLM string duration, null no_speech_prob, no words": {
			body:      `{"duration":"2.0","text":"ab cd","segments":[{"start":1.0,"end":1.5,"text":" ab cd","no_speech_prob":null}]}`,
			text:      "ab cd",
			duration:  2 * time.Second,
			words:     []Word{{"ab", 1000 * time.Millisecond, 1200 * time.Millisecond}, {"cd", 1300 * time.Millisecond, 1500 * time.Millisecond}},
			estimated: true,
		},
		"whisper.cpp tokens, punctuation joins its word": {
			body:     `{"duration":4,"text":" Hello, you","segments":[{"start":0,"end":1,"text":" Hello, you","words":[{"word":" Hel","start":0.1,"end":0.3},{"word":"lo","start":0.3,"end":0.5},{"word":",","start":0.5,"end":0.5},{"word":" you","start":0.6,"end":0.9}]}]}`,
			text:     "Hello, you",
			duration: 4 * time.Second,
			words:    []Word{{"Hello,", 100 * time.Millisecond, 500 * time.Millisecond}, {"you", 600 * time.Millisecond, 900 * time.Millisecond}},
		},
		"nested words without leading spaces are words already": {
			body:     `{"text":"a b","segments":[{"start":0,"end":1,"text":"a b","words":[{"word":"a","start":0.1,"end":0.2},{"word":"b","start":0.3,"end":0.4}]}]}`,
			text:     "a b",
			duration: audio,
			words:    []Word{{"a", 100 * time.Millisecond, 200 * time.Millisecond}, {"b", 300 * time.Millisecond, 400 * time.Millisecond}},
		},
		"gpt-4o json: text only, spread over the audio": {
			body:      `{"text":"one two"}`,
			text:      "one two",
			duration:  audio,
			words:     []Word{{"one", 0, 1714285714}, {"two", 2285714285, 4 * time.Second}},
			estimated: true,
		},
		"slightly past the end is clamped": {
			body:     `{"text":"a","words":[{"word":"a","start":3.8,"end":4.2}]}`,
			text:     "a",
			duration: audio,
			words:    []Word{{"a", 3800 * time.Millisecond, audio}},
		},
		"silence": {
			body:     `{"text":"","segments":[]}`,
			duration: audio,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res, err := parseAnswer([]byte(tc.body), audio, "en")
			require.NoError(t, err)
			require.Equal(t, tc.text, res.Text)
			require.Equal(t, tc.duration, res.Duration)
			require.Equal(t, tc.words, res.Words)
			require.Equal(t, tc.estimated, res.WordsEstimated)
			require.NotEmpty(t, res.Language)
		})
	}
}

func TestParseAnswerRejects(t *testing.T) {
	t.Parallel()
	for name, body := range map[string]string{
		"not json":           `<html>Bad Gateway</html>`,
		"duration not float": `{"duration":"soon"}`,
		"infinite":           `{"duration":"+Inf"}`,
		"negative start":     `{"words":[{"word":"a","start":-1,"end":0.2}]}`,
		"missing end":        `{"segments":[{"start":1,"text":"a"}]}`,
		"segments backwards": `{"segments":[{"start":2,"end":3,"text":"a"},{"start":1,"end":1.5,"text":"b"}]}`,
		"far past the end":   `{"words":[{"word":"a","start":4.5,"end":4.6}]}`,
		"whisper.cpp error":  `{"error":"failed to read audio data"}`,
		"error object":       `{"error":{"message":"model overloaded"},"text":""}`,
	} {
		_, err := parseAnswer([]byte(body), 4*time.Second, "")
		require.ErrorIs(t, err, ErrBadAnswer, name)
	}
	_, err := parseAnswer([]byte(`{"error":"failed to read audio data"}`), time.Second, "")
	require.ErrorContains(t, err, "answered success with an error: failed to read audio data")
	_, err = parseAnswer([]byte(`{"error":null,"text":"a"}`), time.Second, "")
	require.NoError(t, err, "a null error is none")
}
